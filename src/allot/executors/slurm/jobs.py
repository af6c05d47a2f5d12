"""The Slurm job table as the Slurm executor sees it: the jobs Slurm has not finished
(``squeue`` in its cheap text form, asked again only when the last answer is older than the
caller allows), the newest job of each allot run by its tag, and the final record of an
ended job (``scontrol show job``); and the exit watch, a thread that, while runs are active,
looks every ``REPORT_INTERVAL`` seconds for runs whose tasks have all reported their exits
(a file check) and every ``poll_interval`` seconds asks ``squeue`` for runs whose jobs ended
without a report, and tells ``on_exit`` about each.

Invariants
- A run submitted after the last ``squeue`` is never taken for gone: a lookup that misses it
  asks again, and the watch reports it only once an answer newer than its ``sbatch`` lacks it.
- The watch thread runs only while runs are watched, and each ended run is reported once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from allot.executors.slurm.commands import SlurmCommandError, SlurmCommands
from allot.executors.slurm.parse import (
    QUEUE_FORMAT,
    QUEUE_STATES,
    SlurmJob,
    SlurmOutputError,
    parse_job_record,
    parse_queue,
)
from allot.executors.slurm.script import run_of

log = logging.getLogger("allot.executors")
REPORT_INTERVAL = 0.02  # how often the watch looks for tasks' exit reports (a stat per task)


class JobTable:
    """``squeue`` answers, cached, and the exit watch (see the module docstring)."""

    def __init__(
        self, commands: SlurmCommands, poll_interval: float, reported: Callable[[str], bool]
    ) -> None:
        self.commands = commands
        self.poll_interval = poll_interval
        self.reported = reported  # whether every task of a run has reported its exit
        self.on_exit: Callable[[str], None] | None = None
        self._lock = threading.Lock()
        self._by_run: dict[str, SlurmJob] = {}
        self._all: list[SlurmJob] = []
        self._asked_at = -math.inf  # monotonic time of the latest squeue
        self._submitted_at: dict[str, float] = {}  # run id -> monotonic time of its sbatch
        self._watched: set[str] = set()
        self._watcher: threading.Thread | None = None
        self._closing = threading.Event()

    def jobs(self, max_age: float) -> list[SlurmJob]:
        """Every job Slurm has not finished (pending, running, completing), asked again when
        the last answer is older than ``max_age`` seconds; raises SlurmCommandError."""
        with self._lock:
            if time.monotonic() - self._asked_at <= max_age:
                return self._all
        asked = time.monotonic()
        done = self.commands.run(
            "squeue", ["--noheader", f"--states={QUEUE_STATES}", f"--format={QUEUE_FORMAT}"]
        )
        try:
            jobs = parse_queue(done.stdout)
        except ValueError as err:
            raise SlurmCommandError(str(err)) from None
        by_run: dict[str, SlurmJob] = {}
        for job in sorted(jobs, key=lambda j: j.job_id):
            run_id = run_of(job.name)
            if run_id is not None:
                by_run[run_id] = job  # the newest job of a run wins
        with self._lock:
            if asked >= self._asked_at:
                self._all, self._by_run, self._asked_at = jobs, by_run, asked
        return jobs

    def job_of(self, run_id: str, max_age: float) -> SlurmJob | None:
        """The run's Slurm job while Slurm has not finished it, else None."""
        self.jobs(max_age)
        with self._lock:
            job = self._by_run.get(run_id)
            stale = self._asked_at < self._submitted_at.get(run_id, -math.inf)
        if job is None and stale:  # asked before its sbatch: ask again
            self.jobs(0.0)
            with self._lock:
                job = self._by_run.get(run_id)
        return job

    def final(self, job_id: int) -> SlurmJob | None:
        """How a job ended, from ``scontrol show job`` (None when Slurm forgot it, after
        ``MinJobAge``)."""
        done = self.commands.run("scontrol", ["show", "job", "-o", str(job_id)], check=False)
        if done.returncode != 0:
            if "Invalid job id" in done.stderr:
                return None
            raise SlurmCommandError(f"scontrol show job -o {job_id} failed: {done.stderr.strip()}")
        try:
            return parse_job_record(done.stdout)
        except SlurmOutputError as err:
            raise SlurmCommandError(str(err)) from None

    def submitting(self, run_id: str) -> None:
        """The run is about to be submitted (call just before ``sbatch``)."""
        with self._lock:
            self._submitted_at[run_id] = time.monotonic()

    def watch(self, run_id: str) -> None:
        """Report the run to ``on_exit`` once its Slurm job has ended."""
        with self._lock:
            self._watched.add(run_id)
            if self._watcher is None:
                self._watcher = threading.Thread(
                    target=self._poll, name="allot-slurm-watch", daemon=True
                )
                self._watcher.start()

    def close(self) -> None:
        """Stop watching (Slurm jobs run on)."""
        self._closing.set()

    def _poll(self) -> None:
        asked = time.monotonic()
        while not self._closing.wait(REPORT_INTERVAL):
            with self._lock:
                if not self._watched:
                    self._watcher = None
                    return
                watched = set(self._watched)
            ended = {r for r in watched if self.reported(r)}
            if time.monotonic() - asked >= self.poll_interval:
                asked = time.monotonic()
                try:
                    self.jobs(self.poll_interval / 2)
                except OSError as err:
                    log.warning("squeue failed: %s", err)
                else:
                    with self._lock:
                        ended |= {r for r in watched if self._has_ended(r)}
            if not ended:
                continue
            with self._lock:
                self._watched -= ended
                for run_id in ended:
                    self._submitted_at.pop(run_id, None)
            for run_id in ended:
                if self.on_exit is not None:
                    self.on_exit(run_id)

    def _has_ended(self, run_id: str) -> bool:
        """Whether the latest answer lacks the run's job although it was asked after the
        submission (under ``_lock``)."""
        return run_id not in self._by_run and self._asked_at > self._submitted_at.get(
            run_id, -math.inf
        )
