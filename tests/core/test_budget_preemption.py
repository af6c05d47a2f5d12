"""Budgets that preempt (``on_exhausted: preempt``, ``allot.core.budget``): once what was
spent plus what stopping the running jobs costs leaves no room, the owner's newest jobs are
preempted through the preemption seam (grace period, then requeued) until the rest can be
kept; its pending jobs wait with ``budget_exhausted``; ``hold`` budgets never preempt. The
property: with ``preempt`` the money spent never passes the hard limit by more than what the
owner's jobs accrue over one cycle; with ``hold`` nothing is ever preempted for a budget."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from allot.core.budget import BudgetCheck, BudgetLimit, OnExhausted
from allot.core.cycle import schedule
from allot.core.explain import Reason
from allot.core.model import JobSpec, RunningJob, TaskPlacement
from allot.core.policy import get_policy
from allot.core.preemption import Strategy
from allot.core.snapshot import Snapshot
from builders import cluster, job, node

PER_GPU_SECOND = 36.0 / 3600  # 36 money units per GPU-hour: 0.01 per GPU-second
RATES = {"H100": (PER_GPU_SECOND / 1000, 0.0, 0.0)}  # T4 is not priced: it costs nothing
PREEMPT, HOLD = OnExhausted.PREEMPT, OnExhausted.HOLD


def _check(
    limit: float,
    now: float,
    *,
    spent: float = 0.0,
    accrued: dict[int, float] | None = None,
    mode: OnExhausted = PREEMPT,
    grace: float = 100.0,
) -> BudgetCheck:
    budget = BudgetLimit(
        "team", limit, spent, accrued or {}, period="2026-12", renews=9e9, on_exhausted=mode
    )
    return BudgetCheck({"team": (budget,)}, RATES, now=now, currency="USD", grace=grace)


def _running(snap: Snapshot, spec: JobSpec, start: float, flavor: str = "H100") -> None:
    node_name = f"n-{flavor}"
    free = [d for d in range(8) if not any(
        p.node == node_name and d in p.devices
        for j in snap.running.values() for p in j.placement
    )]  # fmt: skip
    gpus = spec.total.gpu_milli // 1000
    placement = (TaskPlacement(node_name, tuple(free[:gpus])),)
    snap.start(RunningJob(spec, start, placement, flavor))


def _snap(check: BudgetCheck) -> Snapshot:
    nodes = [node("n-H100").flavor("H100").gpus(8), node("n-T4").flavor("T4").gpus(8)]
    return Snapshot(cluster(*nodes), checks=(check,))


def _three_running(limit: float, mode: OnExhausted = PREEMPT) -> tuple[Snapshot, BudgetCheck]:
    """Jobs 1, 2, 3 (started at 0, 10, 20) hold one GPU each on H100: 0.01 a second, 1.00 to
    stop with a grace period of 100 s. At t=100 they accrued 1.00, 0.90 and 0.80."""
    check = _check(limit, 100.0, accrued={1: 1.0, 2: 0.9, 3: 0.8}, mode=mode)
    snap = _snap(check)
    for i, start in ((1, 0.0), (2, 10.0), (3, 20.0)):
        _running(snap, job(i).gpus(1).tenant("team").build(), start)
    return snap, check


def test_a_budget_that_can_keep_its_jobs_preempts_nothing() -> None:
    # spent 2.70 + stopping all 3.00 + one more grace for all 3.00 = 8.70 < 9.
    snap, _ = _three_running(9.0)
    assert schedule(snap, [], get_policy("fifo"), 100.0).preemptions == ()


def test_the_newest_jobs_are_preempted_until_the_rest_can_be_kept() -> None:
    snap, _ = _three_running(8.0)  # 8.70 >= 8: without job 3, 7.70 < 8
    plan = schedule(snap, [], get_policy("fifo"), 100.0)
    assert [(p.victim, p.preemptor, p.strategy) for p in plan.preemptions] == [
        (3, None, Strategy.BUDGET)
    ]
    stop = plan.preemptions[0]
    assert stop.stop_by == 200.0  # the grace period, then requeued
    assert stop.why is not None
    assert stop.why.reason is Reason.BUDGET_EXHAUSTED
    assert stop.why.fields["spent"] == 2.7
    assert stop.why.fields["needed"] == 8.7
    assert "budget of tenant team for 2026-12 is exhausted" in stop.why.message()
    assert snap.stopping == set()  # the snapshot is left as it came


def test_an_exhausted_budget_preempts_every_job_that_costs_money() -> None:
    snap, _ = _three_running(2.0)
    free = job(4).gpus(1).tenant("team").build()
    _running(snap, free, 30.0, "T4")  # unpriced: stopping it saves nothing
    plan = schedule(snap, [], get_policy("fifo"), 100.0)
    assert [p.victim for p in plan.preemptions] == [3, 2, 1]


def test_a_hold_budget_never_preempts() -> None:
    snap, _ = _three_running(1.0, HOLD)
    assert schedule(snap, [], get_policy("fifo"), 100.0).preemptions == ()


def test_pending_jobs_of_an_exhausted_budget_wait_with_the_figures() -> None:
    snap, _ = _three_running(8.0)
    waiting = job(5).gpus(1).tenant("team").estimate(60).flavors("H100").build()
    other = job(6).gpus(1).tenant("other").queue("elsewhere").build()
    plan = schedule(snap, [waiting, other], get_policy("fifo"), 100.0)
    assert [s.job_id for s in plan.starts] == [6]
    why = plan.pending[5]
    assert why.reason is Reason.BUDGET_EXHAUSTED
    assert why.fields["limit"] == 8.0
    assert "renews" in why.remedy()


def test_a_job_is_not_started_to_be_stopped_at_the_next_cycle() -> None:
    snap, _ = _three_running(9.5)  # 8.70 kept; a fourth would need 8.70 + 2.00
    fourth = job(5).gpus(1).tenant("team").estimate(60).flavors("H100").build()
    plan = schedule(snap, [fourth], get_policy("fifo"), 100.0)
    assert plan.starts == ()
    assert plan.preemptions == ()
    assert plan.pending[5].reason is Reason.BUDGET_EXHAUSTED


# ------------------------------------------------------------------ property


@settings(max_examples=60, deadline=None)
@given(
    gpus=st.lists(st.integers(1, 3), min_size=1, max_size=5),
    limit=st.floats(1.0, 60.0),
    grace=st.sampled_from([0.0, 30.0, 300.0]),
    gap=st.sampled_from([10.0, 60.0, 600.0]),
    mode=st.sampled_from(list(OnExhausted)),
)
def test_preempting_budgets_overspend_by_at_most_one_cycle(
    gpus: list[int], limit: float, grace: float, gap: float, mode: OnExhausted
) -> None:
    """Cycles every ``gap`` seconds over jobs that never end by themselves; a stopped job is
    requeued at its stop. Money is 0.01 per GPU-second on H100."""
    specs = {
        i: job(i).gpus(g).tenant("team").estimate(60).flavors("H100").build()
        for i, g in enumerate(gpus, 1)
    }
    pending = dict(specs)
    ended = 0.0  # money of runs that ended
    stops: dict[int, float] = {}
    check = _check(limit, 0.0, mode=mode, grace=grace)
    snap = _snap(check)
    policy = get_policy("fifo")
    now = 0.0
    rate_all = sum(gpus) * PER_GPU_SECOND
    for _ in range(30):
        # Victims whose grace is over stop, and are requeued.
        for job_id, at in sorted(stops.items(), key=lambda kv: kv[1]):
            if at <= now:
                run = snap.running[job_id]
                ended += run.spec.total.gpu_milli / 1000 * PER_GPU_SECOND * (at - run.start_time)
                snap.finish(job_id)
                pending[job_id] = specs[job_id]
                del stops[job_id]
        accrued = {
            j: r.spec.total.gpu_milli / 1000 * PER_GPU_SECOND * (now - r.start_time)
            for j, r in snap.running.items()
        }
        spent = ended + sum(accrued.values())
        assert spent <= limit + rate_all * gap + 1e-9 or mode is HOLD
        if mode is PREEMPT and grace >= gap:
            assert spent <= limit + 1e-9  # cycles within a grace period: never past it
        snap.checks = (replace(check, limits=_limits(check, ended, accrued), now=now),)
        plan = schedule(snap, list(pending.values()), policy, now)
        if mode is HOLD:
            assert plan.preemptions == ()
        for p in plan.preemptions:
            snap.mark_stopping(p.victim, p.stop_by)
            stops[p.victim] = p.stop_by
        for start in plan.starts:
            snap.start(RunningJob(pending.pop(start.job_id), now, start.placement, start.flavor))
        now += gap


def _limits(
    check: BudgetCheck, spent: float, accrued: dict[int, float]
) -> dict[str, tuple[BudgetLimit, ...]]:
    (limit,) = check.limits["team"]
    return {"team": (replace(limit, spent=spent, accrued=accrued),)}
