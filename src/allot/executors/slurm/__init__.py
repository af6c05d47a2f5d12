"""The Slurm executor: allot decides, Slurm launches, isolates and tracks. Each allot run is
one Slurm job pinned where allot placed it (``executor``); Slurm's output is read in one
module (``parse``), the batch script rendered by one pure function (``script``) from what the
run asks (``tasks``, which also writes each task's spec), Slurm's job table polled and exits
pushed (``jobs``), a run's status derived from the task reports and Slurm's job
(``tracking``), and Slurm's commands run with errors that name them (``commands``). See
docs/slurm.md.
"""

from __future__ import annotations

from allot.executors.slurm.commands import SlurmCommandError, SlurmCommands
from allot.executors.slurm.executor import SlurmExecutor

__all__ = ["SlurmCommandError", "SlurmCommands", "SlurmExecutor"]
