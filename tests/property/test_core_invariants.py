"""Invariants of the scheduling core over random clusters, running jobs and job streams.

- A plan never over-allocates a node (checked by independent accounting, not the snapshot's).
- A gang starts whole or not at all, within one node pool; each task lands on one up node of
  an accepted flavor with exactly the devices it asked for.
- Every pending job is either started or explained, never both.
- Strict FIFO starts nothing behind the first job that does not fit.
- EASY backfill never delays the reserved head: after the plan's starts, the head still fits at
  its shadow time once the jobs expected to end by then have ended.
- The same inputs always give the same Plan, and ``schedule`` leaves the snapshot unchanged.
- Any sequence of snapshot edits undone in reverse restores the snapshot exactly.
- An owner-scoped admission check refuses exactly its owners' jobs: no verdict about one job
  is reused for a same-shape job of another owner.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allot.core.checks import CacheScope, CheckBlock
from allot.core.cycle import schedule
from allot.core.explain import Explanation, Reason
from allot.core.model import (
    MILLI_PER_GPU,
    Cluster,
    JobSpec,
    Node,
    NodeState,
    Resources,
    RunningJob,
)
from allot.core.placement import choose_placement
from allot.core.placement.diagnose import screen
from allot.core.plan import Plan
from allot.core.policy import POLICIES, get_policy
from allot.core.quota.tree import Request
from allot.core.snapshot import Snapshot

FLAVORS = ("A100", "H100", "L4")
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Scenario:
    cluster: Cluster
    running: tuple[RunningJob, ...]
    pending: tuple[JobSpec, ...]
    now: float


@st.composite
def nodes(draw: st.DrawFn) -> tuple[Node, ...]:
    count = draw(st.integers(1, 8))
    return tuple(
        Node(
            f"n{i}",
            draw(st.sampled_from(FLAVORS[:2])),
            draw(st.sampled_from((0, 1, 2, 4, 8))),
            draw(st.sampled_from((4_000, 16_000, 64_000))),
            draw(st.sampled_from((8_192, 65_536, 524_288))),
            state=draw(st.sampled_from((NodeState.UP,) * 4 + (NodeState.DRAINING, NodeState.DOWN))),
            pool=draw(st.sampled_from(("", "", "other"))),
        )
        for i in range(count)
    )


@st.composite
def jobs(draw: st.DrawFn, first_id: int, count: int) -> list[JobSpec]:
    specs = []
    for k in range(count):
        per_task = Resources(
            draw(st.sampled_from((0, 250, 500, 1000, 1000, 2000, 4000, 8000))),
            draw(st.sampled_from((0, 1000, 4000, 16_000))),
            draw(st.sampled_from((0, 1024, 8192, 65_536))),
        )
        flavors = draw(
            st.one_of(st.just(()), st.permutations(FLAVORS).map(lambda p: p[: 1 + len(p) % 2]))
        )
        specs.append(
            JobSpec(
                first_id + k,
                draw(st.sampled_from(("t1", "t2"))),
                "u",
                "q",
                (per_task,) * draw(st.sampled_from((1, 1, 1, 2, 3))),
                flavors=flavors,
                priority=draw(st.integers(0, 3)),
                submit_time=float(draw(st.integers(0, 50))),
                runtime_estimate=draw(st.one_of(st.none(), st.integers(1, 400).map(float))),
                time_limit=draw(st.one_of(st.none(), st.integers(1, 800).map(float))),
            )
        )
    return specs


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    cluster = Cluster(draw(nodes()))
    now = 100.0
    # Running jobs are whatever a best-effort cycle on the empty cluster would start.
    seed_jobs = draw(jobs(1_000, draw(st.integers(0, 12))))
    snap = Snapshot(cluster)
    plan = schedule(snap, seed_jobs, get_policy("besteffort"), 0.0)
    by_id = {j.id: j for j in seed_jobs}
    running = tuple(
        RunningJob(by_id[s.job_id], float(draw(st.integers(0, 150))), s.placement, s.flavor)
        for s in plan.starts
    )
    pending = draw(jobs(1, draw(st.integers(1, 14))))
    return Scenario(cluster, running, tuple(pending), now)


def _assert_within_capacity(cluster: Cluster, running: Sequence[RunningJob]) -> None:
    """Independent accounting: per device, per node CPU and memory, from placements only."""
    by_name = {n.name: n for n in cluster.nodes}
    device_use: dict[tuple[str, int], int] = defaultdict(int)
    cpu_use: dict[str, int] = defaultdict(int)
    mem_use: dict[str, int] = defaultdict(int)
    for job in running:
        for task, where in zip(job.spec.tasks, job.placement, strict=True):
            for d in where.devices:
                assert 0 <= d < by_name[where.node].gpus
                device_use[where.node, d] += where.gpu_milli_per_device
            cpu_use[where.node] += task.cpu_milli
            mem_use[where.node] += task.memory_mib
    assert all(use <= MILLI_PER_GPU for use in device_use.values()), device_use
    assert all(cpu_use[n] <= by_name[n].cpu_milli for n in cpu_use)
    assert all(mem_use[n] <= by_name[n].memory_mib for n in mem_use)


def _applied(scenario: Scenario, plan: Plan) -> list[RunningJob]:
    by_id = {j.id: j for j in scenario.pending}
    return list(scenario.running) + [
        RunningJob(by_id[s.job_id], scenario.now, s.placement, s.flavor) for s in plan.starts
    ]


def _state(snap: Snapshot) -> tuple[object, ...]:
    return (
        [list(d) for d in snap.dev_free],
        list(snap.cpu_free),
        list(snap.mem_free),
        {f: list(b) for f, b in snap.buckets.items()},
        {f: list(b) for f, b in snap.partial.items()},
        dict(snap.free_gpu_milli),
        dict(snap.running),  # order carries no meaning: decisions never iterate it raw
        list(snap.ends),
        list(snap.state),
        snap.allocated_gpu_milli,
    )


@SETTINGS
@given(scenarios(), st.sampled_from(sorted(POLICIES)))
def test_plans_never_over_allocate_and_start_gangs_whole(scenario: Scenario, name: str) -> None:
    snap = Snapshot(scenario.cluster, scenario.running)
    plan = schedule(snap, scenario.pending, get_policy(name), scenario.now)
    _assert_within_capacity(scenario.cluster, _applied(scenario, plan))
    by_id = {j.id: j for j in scenario.pending}
    nodes_by_name = {n.name: n for n in scenario.cluster.nodes}
    started = [s.job_id for s in plan.starts]
    assert len(started) == len(set(started))
    assert set(started).isdisjoint(plan.pending)
    assert set(started) | set(plan.pending) == set(by_id)
    for start in plan.starts:
        spec = by_id[start.job_id]
        assert len(start.placement) == len(spec.tasks)  # the whole gang, one place per task
        assert len({nodes_by_name[p.node].pool for p in start.placement}) == 1  # one pool
        assert not spec.flavors or start.flavor in spec.flavors
        for task, where in zip(spec.tasks, start.placement, strict=True):
            host = nodes_by_name[where.node]
            assert host.state is NodeState.UP
            assert host.flavor == start.flavor
            if task.gpu_milli >= MILLI_PER_GPU:
                assert len(set(where.devices)) == task.gpu_milli // MILLI_PER_GPU
                assert where.gpu_milli_per_device == MILLI_PER_GPU
            elif task.gpu_milli:
                assert len(where.devices) == 1
                assert where.gpu_milli_per_device == task.gpu_milli
            else:
                assert where.devices == ()
    # Applying the plan through the snapshot's own checks agrees.
    for job in _applied(scenario, plan)[len(scenario.running) :]:
        snap.start(job)


@SETTINGS
@given(scenarios())
def test_strict_fifo_starts_nothing_behind_a_blocked_head(scenario: Scenario) -> None:
    snap = Snapshot(scenario.cluster, scenario.running)
    plan = schedule(snap, scenario.pending, get_policy("fifo"), scenario.now)
    blocked = False
    static = {Reason.NEVER_FITS, Reason.NO_FLAVOR, Reason.NODES_UNAVAILABLE}
    for spec in sorted(scenario.pending, key=lambda j: (j.submit_time, j.id)):
        if spec.id in plan.pending and plan.pending[spec.id].reason not in static:
            blocked = True
        elif blocked:
            assert spec.id not in plan.started_ids()


@SETTINGS
@given(scenarios())
def test_backfill_never_delays_the_reserved_head(scenario: Scenario) -> None:
    snap = Snapshot(scenario.cluster, scenario.running)
    plan = schedule(snap, scenario.pending, get_policy("backfill"), scenario.now)
    for reservation in plan.reservations:
        shadow = reservation.start_time
        assert shadow >= scenario.now
        # Worst case for the head: every job runs to its expected end (a job already past it
        # ends now), nothing ends early.
        still_running = [
            job for job in _applied(scenario, plan) if max(job.expected_end, scenario.now) > shadow
        ]
        at_shadow = Snapshot(scenario.cluster, still_running)
        head = next(j for j in scenario.pending if j.id == reservation.job_id)
        assert choose_placement(at_shadow, head, reservation.flavor) is not None


@SETTINGS
@given(scenarios(), st.sampled_from(sorted(POLICIES)))
def test_same_inputs_same_plan_and_snapshot_unchanged(scenario: Scenario, name: str) -> None:
    policy = get_policy(name)
    snap = Snapshot(scenario.cluster, scenario.running)
    before = _state(snap)
    first = schedule(snap, scenario.pending, policy, scenario.now)
    assert _state(snap) == before
    assert schedule(snap, scenario.pending, policy, scenario.now) == first
    fresh = Snapshot(scenario.cluster, scenario.running)
    assert schedule(fresh, list(reversed(scenario.pending)), policy, scenario.now) == first


@SETTINGS
@given(scenarios(), st.lists(st.integers(0, 1_000), max_size=12))
def test_edits_undone_in_reverse_restore_the_snapshot(scenario: Scenario, picks: list[int]) -> None:
    snap = Snapshot(scenario.cluster, scenario.running)
    before = _state(snap)
    undos = []
    pending = list(scenario.pending)
    for pick in picks:
        action = pick % 3
        if action == 0 and snap.running:
            victim = sorted(snap.running)[pick % len(snap.running)]
            undos.append(snap.finish(victim))
        elif action == 1 and pending:
            spec = pending.pop(pick % len(pending))
            for flavor in scenario.cluster.flavors:
                placement = choose_placement(snap, spec, flavor)
                if placement is not None:
                    undos.append(snap.start(RunningJob(spec, 0.0, placement, flavor)))
                    break
        else:
            node = scenario.cluster.nodes[pick % len(scenario.cluster.nodes)]
            undos.append(snap.set_node_state(node.name, (NodeState.UP, NodeState.DOWN)[pick % 2]))
    for undo in reversed(undos):
        undo()
    assert _state(snap) == before


@dataclass(frozen=True)
class _RefusedUsers:
    """An owner-scoped admission check (as a per-user budget): refuses the given users."""

    users: frozenset[str]
    scope: CacheScope = CacheScope.OWNER
    name: str = "refused-users"
    reasons: frozenset[Reason] = frozenset({Reason.QUOTA})

    def block(
        self, snap: Snapshot, spec: JobSpec, flavor: str, request: Request
    ) -> CheckBlock | None:
        if spec.user not in self.users:
            return None
        return CheckBlock(self.name, Explanation(Reason.QUOTA, {"queue": spec.queue}))


@st.composite
def twins(draw: st.DrawFn) -> list[JobSpec]:
    """Pending jobs of few shapes, so same-shape jobs of different owners are common."""
    shapes = [Resources(1000, 1000, 1024), Resources(2000, 1000, 1024), Resources(500, 0, 0)]
    return [
        JobSpec(
            k + 1,
            "t1",
            draw(st.sampled_from(("ann", "bob", "cat"))),
            "q",
            (draw(st.sampled_from(shapes)),) * draw(st.sampled_from((1, 1, 2))),
            priority=draw(st.integers(0, 2)),
            submit_time=float(k),
            runtime_estimate=draw(st.one_of(st.none(), st.integers(1, 400).map(float))),
        )
        for k in range(draw(st.integers(2, 14)))
    ]


@SETTINGS
@given(
    scenarios(),
    twins(),
    st.sampled_from(["besteffort", "priority", "sjf", "backfill"]),
    st.frozensets(st.sampled_from(("ann", "bob", "cat")), min_size=1, max_size=2),
)
def test_an_owner_check_refuses_exactly_its_owners_jobs(
    scenario: Scenario, pending: list[JobSpec], name: str, refused: frozenset[str]
) -> None:
    # Jobs of one shape and queue that differ only in their owner share no verdict: with the
    # check, the plan starts what the same cycle starts without the refused owners' jobs.
    policy = get_policy(name)
    checked = Snapshot(scenario.cluster, scenario.running, checks=(_RefusedUsers(refused),))
    plan = schedule(checked, pending, policy, scenario.now)
    allowed = [j for j in pending if j.user not in refused]
    expected = schedule(Snapshot(scenario.cluster, scenario.running), allowed, policy, scenario.now)
    assert plan.starts == expected.starts
    # A refused job is told so, unless a blocked head holds everyone behind it.
    told = {Reason.QUOTA, Reason.NO_RESERVATION, Reason.BLOCKED_BY_HEAD, Reason.BLOCKED_IN_QUEUE}
    for spec in pending:
        if spec.user in refused and screen(checked, spec) is None:
            assert plan.pending[spec.id].reason in told
