"""Running Slurm's client commands (``sinfo``, ``squeue``, ``sbatch``, ``scancel``) for the
Slurm executor: each one a subprocess with a timeout, its failures turned into
``SlurmCommandError`` naming the command that failed and what it printed on stderr.

The commands find the cluster as any Slurm user's do: through ``SLURM_CONF`` or the system's
``/etc/slurm``; ``bin_dir`` picks another directory of binaries.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_TIMEOUT = 30.0


class SlurmCommandError(OSError):
    """A Slurm command is missing, failed or did not answer; the message names the command
    and quotes its stderr. An OSError, so a launch that fails this way fails the run with
    the message (``allot.control.apply``)."""


@dataclass(frozen=True, slots=True)
class SlurmCommands:
    """Where the Slurm binaries are and how long a command may take."""

    bin_dir: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    env: Mapping[str, str] | None = field(default=None)  # None: this process's environment

    def program(self, name: str) -> str:
        """The path of Slurm command ``name``; raises SlurmCommandError when it is missing."""
        path = shutil.which(name, path=self.bin_dir) if self.bin_dir else shutil.which(name)
        if path is None:
            where = f"in {self.bin_dir}" if self.bin_dir else "on PATH"
            raise SlurmCommandError(
                f"{name}: command not found {where}; is Slurm installed on this machine?"
            )
        return path

    def run(
        self, name: str, args: Sequence[str], *, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run Slurm command ``name`` with ``args``; raises SlurmCommandError when it cannot
        start, times out, or (with ``check``) exits non-zero."""
        argv = [self.program(name), *args]
        shown = shlex.join([name, *args])
        try:
            done = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                env=dict(self.env) if self.env is not None else None,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SlurmCommandError(
                f"{shown}: no answer within {self.timeout:g} s; is slurmctld running?"
            ) from None
        except OSError as err:
            raise SlurmCommandError(f"{shown}: cannot run: {err}") from None
        if check and done.returncode != 0:
            raise SlurmCommandError(
                f"{shown} failed (exit {done.returncode}): {_tail(done.stderr or done.stdout)}"
            )
        return done


def _tail(text: str, lines: int = 5) -> str:
    """The last lines of a command's output, on one line."""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " / ".join(kept) or "(no output)"


def environment_without(names: frozenset[str]) -> dict[str, str]:
    """This process's environment without ``names`` (what a submitted job must not see)."""
    return {k: v for k, v in os.environ.items() if k not in names}
