"""The batch script of a run: the text ``sbatch`` gets for one allot run, rendered by one pure
function (``render``) from a ``BatchJob``, so what allot asks of Slurm is visible and tested as
text (snapshot tests).

One run is one Slurm job, pinned where allot placed it:
- one task: ``--nodelist`` its node, ``--gres=gpu:N``, ``--cpus-per-task``, ``--mem``; the
  batch step itself ``exec``s the task's runner (``allot.executors.runner``), so a stop is a
  SIGTERM to the batch step (``scancel --batch``) that the runner forwards to the task once;
- a gang: ``--ntasks`` with ``--distribution=arbitrary`` and a hostfile (``SLURM_HOSTFILE``,
  one line per task, in task order), so every task lands on the node allot chose, however
  many tasks a node holds; ``--gpus-per-task``, ``--cpus-per-task``, ``--mem-per-cpu``; one
  ``srun`` step starts every task's runner, task ``SLURM_PROCID`` = allot's task index.

The job is tagged for reconciliation after a restart: its name is ``allot-<run id>`` and its
comment names the allot job. Slurm never requeues it (``--no-requeue``): allot decides.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

NAME_PREFIX = "allot-"


def job_name(run_id: str) -> str:
    """The Slurm job name of a run (its tag)."""
    return f"{NAME_PREFIX}{run_id}"


def run_of(job_name: str) -> str | None:
    """The run id a Slurm job name tags, or None for a job allot did not launch."""
    return job_name[len(NAME_PREFIX) :] if job_name.startswith(NAME_PREFIX) else None


@dataclass(frozen=True, slots=True)
class BatchJob:
    """Everything the batch script of one run says."""

    run_id: str
    job_id: int
    nodes: tuple[str, ...]  # the node of each task, in task order
    gpus_per_task: int
    cpus_per_task: int
    memory_mb_per_task: int  # 0: not asked for
    time_minutes: int | None  # Slurm's own limit: a backstop behind the runner's
    run_dir: str  # holds task-<index>/ and Slurm's output of the batch step
    python: str  # the interpreter that runs the runner on the nodes
    runner: str  # the path of allot/executors/runner.py on the nodes
    partition: str | None = None

    @property
    def gang(self) -> bool:
        return len(self.nodes) > 1

    @property
    def hostfile(self) -> str:
        """The text of ``SLURM_HOSTFILE`` for a gang: one node per task."""
        return "".join(f"{node}\n" for node in self.nodes)


def render(job: BatchJob) -> str:
    """The batch script (see the module docstring)."""
    distinct = list(dict.fromkeys(job.nodes))
    lines = [
        "#!/bin/sh",
        f"# allot job {job.job_id}, run {job.run_id}: written by allot's Slurm executor.",
        f"#SBATCH --job-name={job_name(job.run_id)}",
        f"#SBATCH --comment=allot-job-{job.job_id}",
    ]
    if job.partition:
        lines.append(f"#SBATCH --partition={job.partition}")
    lines += [
        f"#SBATCH --nodes={len(distinct)}",
        f"#SBATCH --ntasks={len(job.nodes)}",
    ]
    if job.gang:
        lines.append("#SBATCH --distribution=arbitrary")
    else:
        lines.append(f"#SBATCH --nodelist={job.nodes[0]}")
    lines.append(f"#SBATCH --cpus-per-task={job.cpus_per_task}")
    if job.memory_mb_per_task:
        if job.gang:
            per_cpu = -(-job.memory_mb_per_task // job.cpus_per_task)
            lines.append(f"#SBATCH --mem-per-cpu={per_cpu}M")
        else:
            lines.append(f"#SBATCH --mem={job.memory_mb_per_task}M")
    if job.gpus_per_task:
        if job.gang:
            lines.append(f"#SBATCH --gpus-per-task={job.gpus_per_task}")
        else:
            lines.append(f"#SBATCH --gres=gpu:{job.gpus_per_task}")
    if job.time_minutes is not None:
        lines.append(f"#SBATCH --time={job.time_minutes}")
    lines += [
        f"#SBATCH --chdir={job.run_dir}",
        f"#SBATCH --output={job.run_dir}/slurm-%j.out",
        "#SBATCH --open-mode=append",
        "#SBATCH --no-requeue",
    ]
    python, runner, run_dir = (shlex.quote(v) for v in (job.python, job.runner, job.run_dir))
    if job.gang:
        lines.append(
            "exec srun --kill-on-bad-exit=0 --wait=0 /bin/sh -c "
            """'exec "$0" -I -S "$1" "$2/task-$SLURM_PROCID"' """
            f"{python} {runner} {run_dir}"
        )
    else:
        lines.append(f"exec {python} -I -S {runner} {run_dir}/task-0")
    return "\n".join(lines) + "\n"
