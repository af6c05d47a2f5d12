"""Invariants of quotas and preemption over random cohort trees, quotas and job streams.

Scenarios: flat or nested cohort trees with GPU and CPU quotas, borrowing and lending limits on
queues and on cohorts; jobs of mixed shapes, priorities and attained service, some neither
preemptible nor checkpointable. Jobs arrive in waves, queue by queue: the first queue's jobs
fill the cluster by borrowing, later queues arrive under or over their nominal quota, so reclaim
and fair-share preemption have work to do. ``hypothesis.event`` records which strategies fired
(``pytest --hypothesis-show-statistics``).

Each scenario is driven for several rounds: schedule, apply the plan (victims stop at once and
are requeued; the preemptor is nominated; starts run), finish a few jobs, and check.

- Usage stays within the limits, checked with ``Model``: the tree recomputed from the running
  jobs with the documented formulas, not the tree's own counters. A node with a borrowing limit
  uses at most its subtree quota plus that limit, a root at most its subtree quota (so no cohort
  hands out a member's guaranteed part), a queue outside any cohort at most its nominal quota.
- A queue within its nominal quota gets it back by reclaim within a bounded number of cycles,
  when the other queues' jobs are preemptible.
- Every preemption is one its strategy allows, stated independently (``_allowed_in``) at a state
  the cycle could have decided it in (before the plan's starts, or after a prefix of them; for a
  reclaim, with the preemptor's own victims within its queue gone): fair share by Kueue's S2-a /
  S2-b at the lowest common ancestor, with what allot adds (the strict ``p < t0``, and ``p``
  counting the room the preemptor's queue-mates would take); a swap within a queue never makes
  the queue borrow more.
- No ping-pong (docs/quotas.md): once a preemptor runs in its victim's place, with every other
  job as it was, no strategy lets the victim take it back; replaying at a fixed instant
  reaches a fixed point; and in no stretch of the replay in which only the jobs of one chain
  act does a chain of preemptions return to where it started (A preempts B ... preempts A).
- The same inputs give the same Plan, and ``schedule`` leaves quota usage as it found it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from allot.core.cycle import schedule
from allot.core.model import Cluster, JobSpec, Node, Resources, RunningJob
from allot.core.plan import Plan
from allot.core.policy import Policy, get_policy
from allot.core.policy.ordering import las_level
from allot.core.preemption import Strategy
from allot.core.preemption.finder import effective_strategies
from allot.core.quota import request_of
from allot.core.quota.config import (
    CohortSpec,
    FairShareRule,
    FlavorResource,
    PreemptionRules,
    QueueSpec,
    QuotaConfig,
    ReclaimWithinCohort,
    ResourceQuota,
    TenantSpec,
    WithinQueue,
)
from allot.core.snapshot import Snapshot

FLAVOR = "H100"
GPU = (FLAVOR, "gpu")
CPU = (FLAVOR, "cpu")
CPU_PER_GPU = 4_000  # milli-cores per GPU on every node
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PREEMPTING = ("kueue", "allot", "las")
QUEUE_RULES_MOSTLY = ("kueue", "allot", "kueue", "allot", "las")
Key = tuple[str, str]  # ("queue" | "cohort", name)
Usage = dict[str, dict[FlavorResource, int]]


@dataclass(frozen=True)
class World:
    cluster: Cluster
    quotas: QuotaConfig
    waves: tuple[tuple[JobSpec, ...], ...]
    attained: dict[int, float] = field(default_factory=dict)

    @property
    def jobs(self) -> tuple[JobSpec, ...]:
        return tuple(j for wave in self.waves for j in wave)


def _limits(draw: st.DrawFn, nominal: int, top: int, *, owned: bool) -> tuple[int | None, ...]:
    borrowing = draw(st.one_of(st.none(), st.integers(0, top)))
    lending = draw(st.one_of(st.none(), st.integers(0, nominal if owned else nominal + 2)))
    return borrowing, lending


@st.composite
def worlds(draw: st.DrawFn, *, one_gpu_jobs: bool = False) -> World:
    node_gpus = draw(st.sampled_from((4, 8)))
    nodes = tuple(
        Node(f"n{i}", FLAVOR, node_gpus, node_gpus * CPU_PER_GPU, 1 << 20)
        for i in range(draw(st.integers(1, 4)))
    )
    gpus = cores = node_gpus * len(nodes)
    cores *= CPU_PER_GPU // 1000
    left = {"gpu": gpus, "cpu": cores}
    with_cpu = draw(st.booleans())
    count = draw(st.integers(2, 4))
    # The first queue in arrival order fills the cluster by borrowing; the others arrive
    # later, one a wave, each with about a fair part of the cluster as nominal quota.
    order = draw(st.permutations(range(count)))

    def quotas(*, owned: bool, least: int, most: int) -> dict[FlavorResource, ResourceQuota]:
        out = {}
        for resource, top in (("gpu", gpus), ("cpu", cores)):
            if resource == "cpu" and not with_cpu:
                continue
            # CPU quotas are whole cores; per GPU a node has CPU_PER_GPU.
            scale = 1 if resource == "gpu" else CPU_PER_GPU // 1000
            low = min(left[resource], least * scale)
            nominal = draw(st.integers(low, max(low, min(left[resource], most * scale))))
            borrowing, lending = _limits(draw, nominal, top, owned=owned)
            left[resource] -= nominal
            out[(FLAVOR, resource)] = ResourceQuota(
                nominal * 1000,
                None if borrowing is None else borrowing * 1000,
                None if lending is None else lending * 1000,
            )
        return out

    fair = gpus // count
    specs: dict[int, dict[FlavorResource, ResourceQuota]] = {}
    for rank, k in enumerate(order):
        specs[k] = quotas(owned=True, least=0 if rank == 0 else 1, most=fair + (rank > 0))
    nested = draw(st.booleans())
    names = (("root", None), ("a", "root"), ("b", "root")) if nested else (("org", None),)
    cohorts = tuple(
        CohortSpec(
            name, parent, quotas(owned=False, least=0, most=2) if draw(st.booleans()) else {}
        )
        for name, parent in names
    )
    queues = []
    for k in range(count):
        # Every rule appears, the permissive ones more often, so preemption has work to do.
        reclaim = draw(st.sampled_from((*ReclaimWithinCohort, ReclaimWithinCohort.ANY)))
        fair_share = draw(
            st.sampled_from(((), *((r,) for r in FairShareRule), tuple(FairShareRule)))
        )
        rules = PreemptionRules(
            within_queue=draw(st.sampled_from(list(WithinQueue))),
            reclaim_within_cohort=reclaim,
            fair_share=fair_share,
            grace_seconds=float(draw(st.integers(0, 60))),
        )
        queues.append(
            QueueSpec(
                f"q{k}",
                f"t{k}",
                ("a", "b")[k % 2] if nested else "org",
                specs[k],
                weight=draw(st.sampled_from((0.5, 1.0, 1.0, 2.0))),
                preemption=rules,
            )
        )
    config = QuotaConfig(tuple(TenantSpec(f"t{k}") for k in range(count)), tuple(queues), cohorts)
    waves: list[list[JobSpec]] = [[] for _ in range(min(count, 3))]
    attained: dict[int, float] = {}
    next_id = 1
    for rank, k in enumerate(order):
        # The first queue's jobs are many and large; later ones mostly fit their nominal.
        big = rank == 0 and not one_gpu_jobs
        for _ in range(draw(st.integers(2, 10) if rank == 0 else st.integers(1, 5))):
            g = 1 if one_gpu_jobs else draw(st.sampled_from((1, 2, 4) if big else (1, 1, 2)))
            tasks = 1 if one_gpu_jobs else draw(st.sampled_from((1, 1, 2)))
            cpu = 1000 if one_gpu_jobs else draw(st.sampled_from((1000, 2000, 4000)))
            spec = JobSpec(
                next_id,
                f"t{k}",
                "u",
                f"q{k}",
                (Resources(g * 1000, cpu, 1024),) * tasks,
                priority=draw(st.integers(0, 2)),
                submit_time=float(next_id),
                runtime_estimate=float(draw(st.integers(10, 500))),
                checkpointable=draw(st.booleans()),
                preemptible=draw(st.sampled_from((True, True, True, False))),
            )
            attained[next_id] = draw(st.sampled_from((0.0, 0.0, 5_000.0, 50_000.0)))
            waves[min(rank, len(waves) - 1)].append(spec)
            next_id += 1
    return World(Cluster(nodes), config, tuple(tuple(w) for w in waves), attained)


# --------------------------------------------------------------------------- the model


class Model:
    """The quota tree recomputed from the configuration and per-queue usage with the formulas
    of ``allot.core.quota.tree``'s docstring, independently of ``QuotaTree``."""

    def __init__(self, config: QuotaConfig, usage: Usage) -> None:
        self.quotas: dict[Key, Mapping[FlavorResource, ResourceQuota]] = {}
        self.parent: dict[Key, Key | None] = {}
        self.weight: dict[Key, float] = defaultdict(lambda: 1.0)
        for c in config.cohorts:
            self.quotas["cohort", c.name] = c.quotas
            self.parent["cohort", c.name] = None if c.parent is None else ("cohort", c.parent)
        for q in config.queues:
            assert q.quotas is not None
            self.quotas["queue", q.name] = q.quotas
            self.parent["queue", q.name] = None if q.cohort is None else ("cohort", q.cohort)
            self.weight["queue", q.name] = q.weight
        self.children: dict[Key, list[Key]] = defaultdict(list)
        for key, parent in self.parent.items():
            if parent is not None:
                self.children[parent].append(key)
        self.frs = sorted({fr for quotas in self.quotas.values() for fr in quotas})
        self.subtree: dict[tuple[Key, FlavorResource], int] = {}
        self.guaranteed: dict[tuple[Key, FlavorResource], int] = {}
        self.used: dict[tuple[Key, FlavorResource], int] = {}
        self.usage = usage
        for key in self.parent:
            if self.parent[key] is None:
                self._fill(key)

    def _limit(self, key: Key, fr: FlavorResource) -> ResourceQuota:
        return self.quotas[key].get(fr, ResourceQuota())

    def _fill(self, key: Key) -> None:
        for child in self.children[key]:
            self._fill(child)
        for fr in self.frs:
            children = self.children[key]
            sub = self._limit(key, fr).nominal + sum(
                self.subtree[c, fr] - self.guaranteed[c, fr] for c in children
            )
            lend = self._limit(key, fr).lending_limit
            self.subtree[key, fr] = sub
            self.guaranteed[key, fr] = 0 if lend is None else max(0, sub - lend)
            if key[0] == "queue":
                counted = fr in self.quotas[key]
                self.used[key, fr] = self.usage.get(key[1], {}).get(fr, 0) if counted else 0
            else:
                self.used[key, fr] = sum(
                    max(0, self.used[c, fr] - self.guaranteed[c, fr]) for c in children
                )

    def potential(self, key: Key, fr: FlavorResource) -> int:
        parent = self.parent[key]
        if parent is None:
            return self.subtree[key, fr]
        reach = self.guaranteed[key, fr] + self.potential(parent, fr)
        limit = self._limit(key, fr).borrowing_limit
        return reach if limit is None else min(reach, self.subtree[key, fr] + limit)

    def share(self, key: Key) -> float:
        parent = self.parent[key]
        if parent is None:
            return 0.0
        own = set(self.quotas[key]) if key[0] == "queue" else set(self.frs)
        borrowed: dict[str, int] = defaultdict(int)
        lendable: dict[str, int] = defaultdict(int)
        for fr in self.frs:
            lendable[fr[1]] += self.potential(parent, fr)
            if fr in own:
                borrowed[fr[1]] += max(0, self.used[key, fr] - self.subtree[key, fr])
        if not any(borrowed.values()):
            return 0.0
        if self.weight[key] == 0:
            return float("inf")
        ratios = [b / lendable[r] for r, b in borrowed.items() if b > 0 and lendable[r] > 0]
        return max(ratios, default=0.0) / self.weight[key]

    def under(self, key: Key) -> set[Key]:
        """``key`` and every node below it."""
        return {key}.union(*(self.under(child) for child in self.children[key]))

    def path(self, key: Key) -> list[Key]:
        out = [key]
        while (parent := self.parent[out[-1]]) is not None:
            out.append(parent)
        return out

    def sides(self, queue: str, other: str) -> tuple[Key, Key] | None:
        """The children of the lowest common ancestor on the paths to the two queues."""
        mine, theirs = self.path(("queue", queue)), self.path(("queue", other))
        for k, node in enumerate(theirs[1:], start=1):
            if node in mine:
                return mine[mine.index(node) - 1], theirs[k - 1]
        return None

    def borrowing(self, queue: str, fr: FlavorResource) -> bool:
        key = ("queue", queue)
        return self.used.get((key, fr), 0) > self.subtree.get((key, fr), 0)


def usage_of(config: QuotaConfig, running: list[RunningJob]) -> Usage:
    usage: Usage = defaultdict(lambda: defaultdict(int))
    for job in running:
        for fr, amount in request_of(job.spec, job.flavor).items():
            usage[job.spec.queue][fr] += amount
    return usage


def assert_within_limits(config: QuotaConfig, running: list[RunningJob]) -> None:
    """Recompute the tree from the running jobs with the documented formulas and check it."""
    model = Model(config, usage_of(config, running))
    for key, parent in model.parent.items():
        for fr in model.frs:
            used, sub = model.used[key, fr], model.subtree[key, fr]
            limit = model._limit(key, fr).borrowing_limit
            if parent is None:
                assert used <= sub, (key, fr, used, sub)
            elif limit is not None:
                assert used <= sub + limit, (key, fr, used, sub, limit)


# --------------------------------------------------------------------------- the rules


def _with(usage: Usage, queue: str, request: Mapping[FlavorResource, int], sign: int) -> Usage:
    changed: Usage = defaultdict(lambda: defaultdict(int))
    for q, amounts in usage.items():
        changed[q].update(amounts)
    for fr, amount in request.items():
        changed[queue][fr] += sign * amount
    return changed


def _allowed_in(
    config: QuotaConfig,
    policy: Policy,
    running: list[RunningJob],
    attained: Mapping[int, float],
    spec: JobSpec,
    victim: RunningJob,
    strategy: Strategy,
    now: float,
    pending: Iterable[JobSpec],
) -> bool:
    """Independent statement of each strategy's rule, in the state ``running`` at ``now``
    with the jobs ``pending``."""
    rules = config.queue_by_name[spec.queue].preemption
    if strategy not in effective_strategies(policy.preemption, with_quotas=True):
        return False
    if not victim.spec.preemptible:
        return False
    if strategy is Strategy.WITHIN_QUEUE:
        if rules.within_queue is WithinQueue.NEVER or victim.spec.queue != spec.queue:
            return False
        newer_equal = rules.within_queue is WithinQueue.LOWER_OR_NEWER_EQUAL_PRIORITY and (
            victim.spec.priority == spec.priority
            and (victim.spec.submit_time, victim.spec.id) > (spec.submit_time, spec.id)
        )
        return victim.spec.priority < spec.priority or newer_equal
    if strategy is Strategy.LAS:
        mine = las_level(attained.get(spec.id, 0.0), policy.las_thresholds)
        return mine < las_level(victim.attained_at(now), policy.las_thresholds)
    usage = usage_of(config, running)
    model = Model(config, usage)
    queue, other = spec.queue, victim.spec.queue
    if queue == other or model.path(("queue", queue))[-1] != model.path(("queue", other))[-1]:
        return False
    if model.parent["queue", queue] is None:
        return False
    request = request_of(spec, victim.flavor)
    used_by_victim = request_of(victim.spec, victim.flavor)
    contended = any(
        amount > 0 and used_by_victim.get(fr, 0) > 0 and model.borrowing(other, fr)
        for fr, amount in request.items()
    )
    if strategy is Strategy.RECLAIM:
        lower_ok = rules.reclaim_within_cohort is ReclaimWithinCohort.ANY or (
            rules.reclaim_within_cohort is ReclaimWithinCohort.LOWER_PRIORITY
            and victim.spec.priority < spec.priority
        )
        # The preemptor's side (the child of the common ancestor on its path: its queue in a
        # flat cohort) stays within its own quota once the preemptor is admitted; the
        # victim's side borrows from the common ancestor what both use.
        sides = model.sides(queue, other)
        if sides is None:
            return False
        mine, theirs = sides
        after = Model(config, _with(usage, queue, request, +1))
        within = all(
            after.used[mine, fr] <= after.subtree[mine, fr]
            for fr, amount in request.items()
            if amount > 0 and (mine, fr) in after.subtree
        )
        side_borrows = any(
            amount > 0
            and used_by_victim.get(fr, 0) > 0
            and model.used.get((theirs, fr), 0) > model.subtree.get((theirs, fr), 0)
            for fr, amount in request.items()
        )
        return lower_ok and within and contended and side_borrows
    if strategy is Strategy.FAIR_SHARE:
        sides = model.sides(queue, other)
        if not rules.fair_share or sides is None or not contended:
            return False
        if model.share(("queue", other)) <= 0:
            return False
        # The preemptor's side takes, besides the job, what the victim frees beyond it as far
        # as the side's other pending jobs ask for it.
        side = sides[0]
        waiting: dict[FlavorResource, int] = defaultdict(int)
        for job in pending:
            if job.id != spec.id and ("queue", job.queue) in model.under(side):
                for fr, amount in request_of(job, victim.flavor).items():
                    waiting[fr] += amount
        taken = {
            fr: amount + min(max(0, used_by_victim.get(fr, 0) - amount), waiting[fr])
            for fr, amount in request.items()
        }
        p = Model(config, _with(usage, queue, taken, +1)).share(side)
        t0 = model.share(sides[1])
        t1 = Model(config, _with(usage, other, used_by_victim, -1)).share(sides[1])
        s2a = FairShareRule.LTE_FINAL_SHARE in rules.fair_share and p <= t1
        s2b = FairShareRule.LT_INITIAL_SHARE in rules.fair_share
        return p < t0 and (s2a or s2b)
    return False


def _no_taking_back(
    world: World,
    policy: Policy,
    running: list[RunningJob],
    attained: Mapping[int, float],
    preemptor: JobSpec,
    victim: RunningJob,
    now: float,
    pending: list[JobSpec],
) -> None:
    """Once ``preemptor`` runs in ``victim``'s place, with every other job as it was, no
    strategy lets ``victim`` take it back (docs/quotas.md, "what stops ping-pong")."""
    taker = RunningJob(
        preemptor, now, victim.placement, victim.flavor, attained.get(preemptor.id, 0.0)
    )
    after = [j for j in running if j.spec.id != victim.spec.id] + [taker]
    levels = {**attained, victim.spec.id: victim.attained_at(now)}
    waiting = [j for j in pending if j.id != preemptor.id] + [victim.spec]
    for strategy in Strategy:
        allowed = _allowed_in(
            world.quotas, policy, after, levels, victim.spec, taker, strategy, now, waiting
        )
        assert not allowed, (preemptor.id, victim.spec.id, strategy)


def _no_more_borrowing_within_queue(
    world: World,
    states: list[list[RunningJob]],
    plan: Plan,
    specs: Mapping[int, JobSpec],
    snap: Snapshot,
) -> None:
    """A preemptor that takes jobs of its own queue leaves the queue using no more of any
    flavor-resource than both it did and its nominal quota (in a state it decided in)."""
    own: dict[int, list[RunningJob]] = defaultdict(list)
    for p in plan.preemptions:
        if p.strategy is Strategy.WITHIN_QUEUE:
            own[p.preemptor].append(snap.running[p.victim])
    for preemptor, victims in own.items():
        spec = specs[preemptor]
        quotas = world.quotas.queue_by_name[spec.queue].quotas
        assert quotas is not None
        request = request_of(spec, victims[0].flavor)
        freed: dict[FlavorResource, int] = defaultdict(int)
        for victim in victims:
            for fr, amount in request_of(victim.spec, victim.flavor).items():
                freed[fr] += amount

        ok = []
        for state in states:
            used = usage_of(world.quotas, state)[spec.queue]
            ok.append(
                all(
                    used[fr] - freed[fr] + amount <= max(used[fr], quotas[fr].nominal)
                    for fr, amount in request.items()
                    if amount > 0 and fr in quotas
                )
            )
        assert any(ok), (preemptor, [v.spec.id for v in victims])


# --------------------------------------------------------------------------- driving


def _apply(snap: Snapshot, pending: dict[int, JobSpec], plan: Plan, now: float) -> None:
    for preemption in plan.preemptions:
        victim = snap.running[preemption.victim]
        snap.finish(preemption.victim)
        snap.attained[preemption.victim] = victim.attained_at(now)
        pending[preemption.victim] = victim.spec
        snap.nominated.add(preemption.preemptor)
    for start in plan.starts:
        spec = pending.pop(start.job_id)
        snap.nominated.discard(start.job_id)
        attained = snap.attained.pop(start.job_id, 0.0)
        snap.start(RunningJob(spec, now, start.placement, start.flavor, attained))


def _states(
    before: list[RunningJob], plan: Plan, specs: Mapping[int, JobSpec], now: float
) -> list[list[RunningJob]]:
    """The running jobs before the plan's starts and after each prefix of them."""
    states = [list(before)]
    for start in plan.starts:
        job = RunningJob(specs[start.job_id], now, start.placement, start.flavor)
        states.append([*states[-1], job])
    return states


@dataclass(frozen=True)
class Round:
    pairs: tuple[tuple[int, int], ...]  # (preemptor, victim)
    starts: tuple[int, ...]


@dataclass
class Run:
    snap: Snapshot
    pending: dict[int, JobSpec]
    rounds: list[Round] = field(default_factory=list)
    fired: set[Strategy] = field(default_factory=set)


def _drive(world: World, policy: Policy, rounds: int, *, finish_some: bool) -> Run:
    snap = Snapshot(world.cluster, quotas=world.quotas, attained=dict(world.attained))
    run = Run(snap, {})
    released, quiet = 0, True
    for step in range(rounds):
        # A wave arrives once the cycle has settled (or, with time passing, every 3 steps).
        if released < len(world.waves) and (quiet or (finish_some and step >= 3 * released)):
            run.pending.update({j.id: j for j in world.waves[released]})
            released += 1
        now = float(step) if finish_some else 0.0
        before, attained, specs = list(snap.running.values()), dict(snap.attained), run.pending
        waiting = list(specs.values())
        plan = schedule(snap, list(run.pending.values()), policy, now)
        states = _states(before, plan, specs, now)
        for p in plan.preemptions:
            victim, spec = snap.running[p.victim], specs[p.preemptor]
            # A reclaim may count on the preemptor's own victims within its queue being gone:
            # taking them can bring its queue back within nominal, which makes it eligible.
            own = {
                q.victim
                for q in plan.preemptions
                if q.preemptor == p.preemptor and q.strategy is Strategy.WITHIN_QUEUE
            }
            if p.strategy is Strategy.RECLAIM and own:
                event("reclaim after taking own jobs")
            seen = [
                [j for j in state if j.spec.id not in own] if p.strategy is Strategy.RECLAIM
                else state
                for state in states
            ]  # fmt: skip
            # The rule holds in a state the cycle could have decided it in (a prefix of its
            # starts), and from there the victim could not take the preemptor's place back.
            decided = [
                state
                for state in seen
                if _allowed_in(
                    world.quotas, policy, state, attained, spec, victim, p.strategy, now, waiting
                )
            ]
            assert decided, p
            for state in decided:
                _no_taking_back(world, policy, state, attained, spec, victim, now, waiting)
            run.fired.add(p.strategy)
        _no_more_borrowing_within_queue(world, states, plan, specs, snap)
        pairs = tuple((p.preemptor, p.victim) for p in plan.preemptions)
        run.rounds.append(Round(pairs, tuple(s.job_id for s in plan.starts)))
        _apply(snap, run.pending, plan, now)
        assert_within_limits(world.quotas, list(snap.running.values()))
        if finish_some and snap.running and step % 3 == 2:
            snap.finish(min(snap.running))
        quiet = not plan.starts and not plan.preemptions
        if quiet and released == len(world.waves) and not finish_some:
            break
    for strategy in sorted(run.fired):
        event(f"preempted by {strategy}")
    if not run.fired:
        event("no preemption")
    return run


def _components(edges: dict[int, set[int]]) -> list[set[int]]:
    """The strongly connected components of more than one job (Tarjan)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    found: list[set[int]] = []

    def visit(job: int) -> None:
        index[job] = low[job] = len(index)
        stack.append(job)
        for nxt in sorted(edges.get(job, ())):
            if nxt not in index:
                visit(nxt)
                low[job] = min(low[job], low[nxt])
            elif nxt in stack:
                low[job] = min(low[job], index[nxt])
        if low[job] == index[job]:
            component = set()
            while True:
                top = stack.pop()
                component.add(top)
                if top == job:
                    break
            if len(component) > 1:
                found.append(component)

    for job in sorted(edges):
        if job not in index:
            visit(job)
    return found


def _ping_pong(rounds: list[Round]) -> tuple[int, int, set[int]] | None:
    """A stretch of rounds ``[lo, hi]`` in which every job that acted (started, preempted or
    was preempted) lies on one cycle of that stretch's preemptions, A -> B -> ... -> A."""
    for lo in range(len(rounds)):
        edges: dict[int, set[int]] = defaultdict(set)
        acted: set[int] = set()
        for hi in range(lo, len(rounds)):
            for preemptor, victim in rounds[hi].pairs:
                edges[preemptor].add(victim)
                acted.update((preemptor, victim))
            acted.update(rounds[hi].starts)
            for component in _components(edges):
                if acted <= component:
                    return lo, hi, component
    return None


# --------------------------------------------------------------------------- properties


@SETTINGS
@given(worlds(), st.sampled_from(("fifo", "backfill", "fairshare", *QUEUE_RULES_MOSTLY)))
def test_usage_stays_within_nominal_plus_borrowing_and_lending_limits(
    world: World, name: str
) -> None:
    _drive(world, get_policy(name), 14, finish_some=True)


@SETTINGS
@given(worlds(), st.sampled_from(QUEUE_RULES_MOSTLY))
def test_replay_reaches_a_fixed_point_without_ping_pong(world: World, name: str) -> None:
    policy = get_policy(name)
    limit = 4 * len(world.jobs) + 4 + len(world.waves)
    run = _drive(world, policy, limit, finish_some=False)
    plan = schedule(run.snap, list(run.pending.values()), policy, 0.0)
    assert not plan.starts, "no fixed point within the bound"
    assert not plan.preemptions, "no fixed point within the bound"
    assert _ping_pong(run.rounds) is None, f"preemptions go round: {_ping_pong(run.rounds)}"


@SETTINGS
@given(worlds(one_gpu_jobs=True), st.sampled_from(("kueue", "allot")))
def test_a_queue_within_nominal_reclaims_in_bounded_time(world: World, name: str) -> None:
    policy = get_policy(name)
    config = world.quotas
    # Let every queue reclaim, and give q0 a backlog that stays within its nominal quota.
    queues = tuple(replace(q, preemption=PreemptionRules(grace_seconds=0)) for q in config.queues)
    config = QuotaConfig(config.tenants, queues, config.cohorts)
    quotas = queues[0].quotas
    assert quotas is not None
    count = quotas[GPU].nominal // 1000
    if CPU in quotas:
        count = min(count, quotas[CPU].nominal // 1000)
    assume(count > 0)
    others = [replace(j, preemptible=True) for j in world.jobs if j.queue != "q0"]
    mine = [
        JobSpec(1000 + k, "t0", "u", "q0", (Resources(1000, 1000, 1024),), submit_time=1e6 + k)
        for k in range(count)
    ]
    snap = Snapshot(world.cluster, quotas=config)
    pending = {j.id: j for j in others}
    for _ in range(len(others) + 2):  # let the others fill the cluster first
        plan = schedule(snap, list(pending.values()), policy, 0.0)
        _apply(snap, pending, plan, 0.0)
    pending.update({j.id: j for j in mine})
    fired: set[Strategy] = set()
    for _ in range(2 * count + 2):
        plan = schedule(snap, list(pending.values()), policy, 0.0)
        fired.update(p.strategy for p in plan.preemptions)
        _apply(snap, pending, plan, 0.0)
    event("q0 reclaimed" if Strategy.RECLAIM in fired else "q0 needed no reclaim")
    assert not any(j.id in pending for j in mine), "q0 did not get its nominal quota back"


@SETTINGS
@given(worlds(), st.sampled_from(PREEMPTING))
def test_same_inputs_same_plan_and_quota_usage_restored(world: World, name: str) -> None:
    policy = get_policy(name)
    run = _drive(world, policy, 8, finish_some=True)
    snap, pending = run.snap, run.pending
    assert snap.quota is not None
    tree = snap.quota

    def usage() -> dict[str, dict[object, int]]:
        nodes = {**tree.queues, **{f"cohort {c}": n for c, n in tree.cohorts.items()}}
        return {name: {fr: v for fr, v in n.usage.items() if v} for name, n in nodes.items()}

    before = usage()
    first = schedule(snap, list(pending.values()), policy, 5.0)
    assert usage() == before
    assert schedule(snap, list(reversed(pending.values())), policy, 5.0) == first
