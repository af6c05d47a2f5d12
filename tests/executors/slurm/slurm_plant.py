"""The live control plane over a real Slurm, for the Slurm tests: ``SlurmPlant`` (real SQLite
store, real clock, the scheduling loop, a ``SlurmExecutor`` in a temporary folder) and
``slurm`` (run a Slurm command against the test cluster)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from allot.control.clock import SystemClock
from allot.control.principal import Principal
from allot.control.records import JobRecord, Launch, NewJob
from allot.control.system import SystemConfig, build
from allot.core.model import Resources
from allot.core.quota.config import PreemptionRules, QueueSpec, QuotaConfig, TenantSpec
from allot.executors.slurm import SlurmExecutor
from allot.executors.slurm.script import job_name
from allot.store import SqlStore, default_database_url

GRACE = 3.0
QUOTAS = QuotaConfig(
    (TenantSpec("default"),),
    (QueueSpec("default", "default", preemption=PreemptionRules(grace_seconds=GRACE)),),
)


def slurm(*args: str) -> str:
    """Run a Slurm command against the test cluster; its stdout."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed: {done.stderr.strip()}"
    return done.stdout


def ended(record: JobRecord) -> bool:
    return record.state.is_terminal


class SlurmPlant:
    """A store, a Slurm executor, a loop and the use cases, in ``root``."""

    def __init__(self, root: Path, *, grace: float = GRACE) -> None:
        self.root = root
        self.store = SqlStore(default_database_url(root))
        self.store.migrate()
        self.executor = SlurmExecutor(root / "slurm", grace_seconds=grace, poll_interval=0.1)
        self.clock = SystemClock()
        if not self.store.quotas().queues:
            self.store.save_quotas(QUOTAS, at=self.clock.now())
        system = build(
            SystemConfig(grace_seconds=grace, inventory_interval=0.5),
            store=self.store,
            executors=self.executor,
            clock=self.clock,
        )
        self.loop, self.control = system.loop, system.control

    def submit(
        self, command: str, *, gpus: float = 1, tasks: int = 1, **changes: object
    ) -> JobRecord:
        job = NewJob(
            name="t",
            tenant="default",
            user="tester",
            queue="default",
            tasks=(Resources.of(gpus=gpus, cpus=1, memory_mib=64),) * tasks,
            launch=Launch(("/bin/sh", "-c", command), workdir=str(self.root)),
        )
        record, created = self.control.submit(
            replace(job, **changes),  # type: ignore[arg-type]
            principal=Principal.admin("tester"),
        )
        assert created
        return record

    def until(
        self, job_id: int, done: Callable[[JobRecord], bool], timeout: float = 30.0
    ) -> JobRecord:
        """Run cycles until ``done`` holds for the job."""
        deadline = time.monotonic() + timeout
        while True:
            self.loop.run_once()
            record = self.store.get_job(job_id)
            if done(record):
                return record
            assert time.monotonic() < deadline, (
                f"job {job_id} stuck in {record.state}: {record.reason}"
            )
            time.sleep(0.05)

    def log(self, job_id: int, task: int = 0) -> str:
        found = self.control.logs(job_id, task=task, principal=Principal.admin("tester"))
        return found.data.decode()

    def slurm_jobs(self) -> list[dict[str, object]]:
        """Every Slurm job this plant launched, as ``squeue --json`` reports it."""
        runs = {job_name(p.name) for p in (self.root / "slurm").glob("*")}
        jobs: list[dict[str, object]] = json.loads(slurm("squeue", "--json"))["jobs"]
        return [j for j in jobs if j["name"] in runs]

    def cancel_everything(self) -> None:
        """scancel every Slurm job this plant launched and wait until none holds a node."""
        names = [job_name(p.name) for p in (self.root / "slurm").glob("*")]
        if names:
            slurm("scancel", f"--name={','.join(names)}")
        deadline = time.monotonic() + 30
        while any(
            j["job_state"] in ("RUNNING", "COMPLETING", "PENDING") for j in self.slurm_jobs()
        ):
            assert time.monotonic() < deadline, "the test's Slurm jobs did not end"
            time.sleep(0.1)
