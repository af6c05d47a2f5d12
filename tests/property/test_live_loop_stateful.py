"""Stateful property test of the live loop: random sequences of submissions (of several
priorities, so jobs preempt each other), cancels, holds, releases, the passing of time and
restarts of the server, on the real loop and a real SQLite store in virtual time
(``virtual.VirtualPlant``). After every step:

- no accepted job is lost, and a job that ended stays ended;
- a job is running exactly while it has one run that has not ended, and its runs never
  overlap in time: no job ever runs twice at once;
- the executor launched every run once;
- what the active runs hold never exceeds a node's devices, CPU or memory.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from allot.control.ports import ConflictError
from allot.control.principal import Principal
from allot.control.records import JobFilter, RunPhase
from allot.control.services import RejectedError
from allot.core.model import JobState, Node
from allot.core.quota.config import PreemptionRules, QueueSpec, QuotaConfig, TenantSpec
from virtual import VirtualPlant

NODES = [Node("n0", "H100", 4, 8_000, 16_384), Node("n1", "H100", 2, 4_000, 8_192)]
RULES = PreemptionRules(grace_seconds=5.0)
QUOTAS = QuotaConfig(
    (TenantSpec("a"), TenantSpec("b")),
    (QueueSpec("qa", "a", preemption=RULES), QueueSpec("qb", "b", preemption=RULES)),
)
ADMIN = Principal.admin("tester")


class LiveLoop(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="allot-stateful-"))
        self.plant = VirtualPlant(self.root, NODES, QUOTAS, policy="allot", grace=5.0)
        self.plant.executor.stop_delay = 1.0
        self.accepted: list[int] = []
        self.ended: dict[int, JobState] = {}

    def teardown(self) -> None:
        self.plant.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(
        tenant=st.sampled_from("ab"),
        gpus=st.sampled_from((1, 1, 2, 4)),
        tasks=st.sampled_from((1, 1, 2)),
        priority=st.sampled_from((0, 0, 10)),
        runs_for=st.one_of(st.none(), st.sampled_from((3.0, 10.0, 40.0))),
    )
    def submit(
        self, tenant: str, gpus: int, tasks: int, priority: int, runs_for: float | None
    ) -> None:
        before = len(self.plant.store.list_jobs(JobFilter(limit=10_000)))
        try:
            record = self.plant.submit(
                tenant=tenant,
                queue=f"q{tenant}",
                gpus=gpus,
                tasks=tasks,
                runs_for=runs_for,
                priority=priority,
            )
        except RejectedError:  # could never run here: refused, and nothing stored
            assert len(self.plant.store.list_jobs(JobFilter(limit=10_000))) == before
            return
        self.accepted.append(record.id)

    @precondition(lambda self: self.accepted)
    @rule(pick=st.integers(0, 1000), action=st.sampled_from(("cancel", "hold", "release")))
    def act(self, pick: int, action: str) -> None:
        job_id = self.accepted[pick % len(self.accepted)]
        control = self.plant.control
        try:
            if action == "cancel":
                control.cancel(job_id, principal=ADMIN)
            elif action == "hold":
                control.hold(job_id, principal=ADMIN)
            else:
                control.release(job_id, principal=ADMIN)
        except ConflictError:
            pass  # not in a state that allows it: refused, nothing changed

    @rule(seconds=st.sampled_from((0.0, 1.0, 4.0, 6.0, 30.0)))
    def advance(self, seconds: float) -> None:
        self.plant.step(seconds)

    @rule()
    def restart(self) -> None:
        self.plant.restart()
        self.plant.step()

    @invariant()
    def nothing_is_lost_and_the_ended_stay_ended(self) -> None:
        for job_id in self.accepted:
            state = self.plant.store.get_job(job_id).state
            if job_id in self.ended:
                assert state is self.ended[job_id], (job_id, self.ended[job_id], state)
            elif state.is_terminal:
                self.ended[job_id] = state

    @invariant()
    def a_job_never_runs_twice_at_once(self) -> None:
        store = self.plant.store
        for job_id in self.accepted:
            record = store.get_job(job_id)
            runs = store.runs_of(job_id)
            open_runs = [r for r in runs if r.phase is not RunPhase.ENDED]
            assert len(open_runs) <= 1
            assert (record.state is JobState.RUNNING) == bool(open_runs)
            for before, after in itertools.pairwise(runs):
                assert before.ended_at is not None
                assert before.ended_at <= after.started_at
        launches = self.plant.executor.launches
        assert len(launches) == len(set(launches))

    @invariant()
    def nodes_are_never_over_allocated(self) -> None:
        devices: dict[tuple[str, int], int] = defaultdict(int)
        cpu: dict[str, int] = defaultdict(int)
        mem: dict[str, int] = defaultdict(int)
        for record in self.plant.store.active_jobs():
            assert record.run is not None
            for task, where in zip(record.job.tasks, record.run.placement, strict=True):
                for d in where.devices:
                    devices[where.node, d] += where.gpu_milli_per_device
                cpu[where.node] += task.cpu_milli
                mem[where.node] += task.memory_mib
        by_name = {n.name: n for n in NODES}
        assert all(use <= 1000 for use in devices.values()), devices
        assert all(d < by_name[node].gpus for node, d in devices)
        assert all(cpu[n] <= by_name[n].cpu_milli for n in cpu)
        assert all(mem[n] <= by_name[n].memory_mib for n in mem)


LiveLoop.TestCase.settings = settings(
    max_examples=15,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_live_loop_keeps_its_invariants = LiveLoop.TestCase
