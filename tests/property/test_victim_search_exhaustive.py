"""The victim search against an exhaustive search over small cases.

Scenarios: one or two nodes, two or three queues in one cohort with nominal GPU quotas,
running jobs of every queue at several priorities (some of the preemptor's own queue, some
borrowing), and one single-task preemptor. The oracle enumerates every set of up to four
candidates and every order of taking them, and calls a set allowed when, taken in some order,
each victim is allowed at the moment it is taken:

- within the queue: the preemptor's queue, a lower priority;
- reclaim: another queue of the cohort that borrows, at that moment, the GPUs both use
  (a lower priority too under ``lower_priority``), while the preemptor's queue, with the
  victims taken so far gone, stays within its nominal quota once the preemptor is admitted;

and, all taken, the preemptor fits its queue's quota and a node, and a queue that lost jobs
of its own borrows no more than before or than its nominal quota. Checked:

- the search finds a set whenever the oracle does (no allowed preemption is missed, the bug
  of deciding reclaim eligibility before any own job was taken);
- every set it finds is allowed;
- it takes no more victims than the fewest the oracle needs.

Also: the candidates a search starts from, found once per victim key and taken queue by queue,
are exactly those found by asking every job and sorting them (with LAS levels, and after a job
was marked stopping).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from allot.core.model import Cluster, JobSpec, Node, Resources, RunningJob
from allot.core.placement.select import choose_placement
from allot.core.policy import get_policy
from allot.core.preemption import Preemptor, Strategy
from allot.core.preemption.candidates import CandidatePool
from allot.core.preemption.search import VictimSearch
from allot.core.preemption.victims import candidates, choose_victims
from allot.core.quota import request_of
from allot.core.quota.config import (
    CohortSpec,
    PreemptionRules,
    QueueSpec,
    QuotaConfig,
    ReclaimWithinCohort,
    ResourceQuota,
    TenantSpec,
)
from allot.core.quota.tree import QuotaTree
from allot.core.snapshot import Snapshot

FLAVOR = "H100"
GPU = (FLAVOR, "gpu")
MAX_VICTIMS = 4


def _spec(job_id: int, queue: str, gpus: int, priority: int) -> JobSpec:
    task = Resources(gpus * 1000, 1000, 1024)
    return JobSpec(job_id, queue, "u", queue, (task,), priority=priority, submit_time=job_id)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Snapshot, Preemptor, QuotaConfig]:
    queues = ["x", "y", "z"][: draw(st.integers(2, 3))]
    nominal = {q: draw(st.integers(0, 3)) for q in queues}
    reclaim = draw(st.sampled_from((ReclaimWithinCohort.ANY, ReclaimWithinCohort.LOWER_PRIORITY)))
    rules = PreemptionRules(reclaim_within_cohort=reclaim)
    config = QuotaConfig(
        tuple(TenantSpec(q) for q in queues),
        tuple(
            QueueSpec(q, q, "org", {GPU: ResourceQuota(nominal[q] * 1000)}, preemption=rules)
            for q in queues
        ),
        (CohortSpec("org"),),
    )
    sizes = draw(st.sampled_from(((4,), (2, 2), (4, 2))))
    nodes = tuple(Node(f"n{i}", FLAVOR, g, 64_000, 65_536) for i, g in enumerate(sizes))
    snap = Snapshot(Cluster(nodes), quotas=config)
    for job_id in range(1, draw(st.integers(2, 6)) + 1):
        spec = _spec(
            job_id,
            draw(st.sampled_from(queues)),
            draw(st.sampled_from((1, 1, 2))),
            draw(st.integers(-1, 1)),
        )
        placement = choose_placement(snap, spec, FLAVOR)
        if placement is not None:
            snap.start(RunningJob(spec, float(job_id), placement, FLAVOR))
    preemptor = _spec(100, draw(st.sampled_from(queues)), draw(st.sampled_from((1, 2))), 0)
    p = Preemptor(
        preemptor,
        FLAVOR,
        request_of(preemptor, FLAVOR),
        rules,
        None,
        1000.0,
        frozenset({Strategy.WITHIN_QUEUE, Strategy.RECLAIM}),
    )
    return snap, p, config


def _allowed_now(tree: QuotaTree, p: Preemptor, victim: RunningJob) -> bool:
    queue, other = p.spec.queue, victim.spec.queue
    if other == queue:
        return victim.spec.priority < p.spec.priority
    if tree.cohort_root(other) != tree.cohort_root(queue):
        return False
    if (
        p.rules.reclaim_within_cohort is ReclaimWithinCohort.LOWER_PRIORITY
        and victim.spec.priority >= p.spec.priority
    ):
        return False
    used = request_of(victim.spec, victim.flavor)
    borrows = any(
        amount > 0 and used.get(fr, 0) > 0 and tree.borrowing(other, fr) > 0
        for fr, amount in p.request.items()
    )
    return borrows and tree.within_nominal(queue, p.request)


def _allowed(snap: Snapshot, p: Preemptor, victims: Sequence[RunningJob]) -> bool:
    """True when some order of taking ``victims`` is allowed and the preemptor then fits."""
    tree = snap.quota
    assert tree is not None
    own = any(v.spec.queue == p.spec.queue for v in victims)
    for order in itertools.permutations(victims):
        undos = []
        try:
            ok = True
            for victim in order:
                if not _allowed_now(tree, p, victim):
                    ok = False
                    break
                undos.append(snap.finish(victim.spec.id))
            if not ok or not tree.fits(p.spec.queue, p.request):
                continue
            if choose_placement(snap, p.spec, p.flavor) is None:
                continue
            node = tree.queues[p.spec.queue]
            if own and any(
                node.usage.get(fr, 0) + amount > node.subtree.get(fr, 0)
                for fr, amount in p.request.items()
                if amount > 0 and fr in node.quotas
            ):
                continue
            return True
        finally:
            for undo in reversed(undos):
                undo()
    return False


def _fewest(snap: Snapshot, p: Preemptor) -> int | None:
    candidates = sorted(
        (j for j in snap.running.values() if j.spec.preemptible), key=lambda j: j.spec.id
    )
    for size in range(1, MAX_VICTIMS + 1):
        for subset in itertools.combinations(candidates, size):
            if _allowed(snap, p, subset):
                return size
    return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_the_search_finds_the_fewest_allowed_victims(
    case: tuple[Snapshot, Preemptor, QuotaConfig],
) -> None:
    snap, p, _ = case
    tree = snap.quota
    assert tree is not None
    if tree.fits(p.spec.queue, p.request) and choose_placement(snap, p.spec, p.flavor):
        return  # no preemption needed
    pool = CandidatePool(snap, p.now, get_policy("kueue").las_thresholds, set(), set(), False)
    found, _ = choose_victims(snap, p, pool)
    fewest = _fewest(snap, p)
    if fewest is None:
        assert found is None or len(found) > MAX_VICTIMS
        return
    assert found is not None, f"{fewest} victims would do; none found: {_describe(snap, p)}"
    chosen = [victim for victim, _ in found]
    assert _allowed(snap, p, chosen), [v.spec.id for v in chosen]
    assert len(chosen) <= fewest, f"{len(chosen)} taken, {fewest} would do: {_describe(snap, p)}"
    strategies = {s for _, s in found}
    if strategies == {Strategy.WITHIN_QUEUE, Strategy.RECLAIM}:
        event("own jobs and reclaimed ones together")


def _describe(snap: Snapshot, p: Preemptor) -> str:
    tree = snap.quota
    assert tree is not None
    jobs = [
        f"{j.spec.id}:{j.spec.queue}/p{j.spec.priority}/{j.spec.tasks[0].gpu_milli}@"
        + ",".join(f"{w.node}{list(w.devices)}" for w in j.placement)
        for j in snap.running.values()
    ]
    nominal = {q: n.subtree.get(GPU, 0) for q, n in tree.queues.items()}
    return (
        f"nodes {[(n.name, n.gpus) for n in snap.nodes]} nominal {nominal} jobs {jobs} "
        f"preemptor {p.spec.queue}/p{p.spec.priority}/{p.spec.tasks[0].gpu_milli} "
        f"{p.rules.reclaim_within_cohort}"
    )


def _one_by_one(snap: Snapshot, p: Preemptor, pool: CandidatePool) -> list[int]:
    """The candidates as the search once found them: every job asked, then sorted by rank."""
    search = VictimSearch(snap, p, pool.thresholds, pool.fresh_queues)
    jobs = pool.of(p.flavor)
    search.plan_candidates(jobs)
    first: dict[object, Strategy | None] = {}
    allowed = [job for job in jobs if search.first_strategy(job, first) is not None]
    return [job.spec.id for job in sorted(allowed, key=search.rank)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.sampled_from((None, 0, 1)), st.booleans(), st.data())
def test_candidates_by_victim_key_are_those_asked_one_by_one(
    case: tuple[Snapshot, Preemptor, QuotaConfig],
    level: int | None,
    stop_one: bool,
    data: st.DataObject,
) -> None:
    snap, p, _ = case
    strategies = p.strategies | ({Strategy.LAS} if level is not None else set())
    p = replace(p, las_level=level, strategies=frozenset(strategies))
    pool = CandidatePool(snap, p.now, (500.0, 1500.0), set(), set(), level is not None)
    if stop_one and snap.running:
        pool.of(p.flavor)  # built, then a job is marked stopping: the list is filtered
        victim = data.draw(st.sampled_from(sorted(snap.running)))
        snap.mark_stopping(victim, p.now + 30)
        pool.invalidate()
    found = candidates(snap, p, pool)
    got = [] if found is None else [job.spec.id for job in found[1]]
    search = VictimSearch(snap, p, pool.thresholds, pool.fresh_queues)
    expected = _one_by_one(snap, p, pool) if search.checks and pool.might_help(p) else []
    assert got == expected
