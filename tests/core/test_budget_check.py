"""The budget admission check: a job whose projected cost passes what its budget has left
waits, explained with the figures; jobs admitted in the same cycle count at once; another
tenant, or a cheaper flavor, is not held back."""

from __future__ import annotations

from dataclasses import replace

from allot.core.budget import BudgetCheck, BudgetLimit
from allot.core.checks import CacheScope, admission_key
from allot.core.cycle import schedule
from allot.core.explain import Reason
from allot.core.model import RunningJob, TaskPlacement
from allot.core.policy import get_policy
from allot.core.snapshot import Snapshot
from builders import cluster, job, node

# 10 money units per GPU-hour on H100, 1 on T4 (per milli-GPU per second).
RATES = {"H100": (10 / 3600 / 1000, 0.0, 0.0), "T4": (1 / 3600 / 1000, 0.0, 0.0)}


def _check(limit: float, *, spent: float = 0.0, user: str | None = None) -> BudgetCheck:
    budget = BudgetLimit("team", limit, spent, user=user, period="2026-12", renews=99.0)
    return BudgetCheck({"team": (budget,)}, RATES, now=0.0, currency="USD")


def _snap(check: BudgetCheck, *flavors: str) -> Snapshot:
    nodes = [node(f"n-{f}").flavor(f).gpus(8) for f in flavors or ("H100",)]
    return Snapshot(cluster(*nodes), checks=(check,))


def test_a_job_that_would_pass_the_budget_waits_with_the_figures() -> None:
    check = _check(100.0, spent=95.0)
    spec = job(1).gpus(1).estimate(3600).build()  # 10 on H100
    plan = schedule(_snap(check), [spec], get_policy("fifo"), 0.0)
    assert not plan.starts
    why = plan.pending[1]
    assert why.reason is Reason.BUDGET
    assert why.fields["needed"] == 10.0
    assert why.fields["remaining"] == 5.0
    assert why.fields["committed"] == 95.0
    assert "budget of tenant team for 2026-12" in why.message()
    assert "renews" in why.remedy()


def test_jobs_admitted_in_one_cycle_count_at_once() -> None:
    check = _check(25.0)
    specs = [job(i).gpus(1).estimate(3600).build() for i in (1, 2, 3)]
    plan = schedule(_snap(check), specs, get_policy("fifo"), 0.0)
    assert [s.job_id for s in plan.starts] == [1, 2]
    assert plan.pending[3].reason is Reason.BUDGET


def test_running_jobs_count_what_they_accrued_and_still_project() -> None:
    check = replace(
        _check(30.0), limits={"team": (BudgetLimit("team", 30.0, 0.0, {9: 5.0}),)}, now=1800.0
    )
    snap = _snap(check)
    running = job(9).gpus(1).estimate(3600).build()  # 5 accrued, 5 still projected
    snap.start(RunningJob(running, 0.0, (TaskPlacement("n-H100", (0,)),), "H100"))
    assert check.committed(snap, check.limits["team"][0]) == 10.0
    specs = [job(i).gpus(1).estimate(3600).build() for i in (1, 2, 3)]
    plan = schedule(snap, specs, get_policy("fifo"), 1800.0)
    assert [s.job_id for s in plan.starts] == [1, 2]


def test_a_cheaper_flavor_still_passes() -> None:
    check = _check(5.0)
    spec = job(1).gpus(1).estimate(3600).flavors("H100", "T4").build()
    plan = schedule(_snap(check, "H100", "T4"), [spec], get_policy("fifo"), 0.0)
    assert [(s.job_id, s.flavor) for s in plan.starts] == [(1, "T4")]


def test_other_tenants_and_users_are_not_held_back() -> None:
    check = _check(0.0, user="alice")
    other = job(1).gpus(1).estimate(3600).build()  # user "user"
    mine = replace(job(2).gpus(1).estimate(3600).build(), user="alice")
    elsewhere = job(3).gpus(1).estimate(3600).tenant("vision").build()
    plan = schedule(_snap(check), [other, mine, elsewhere], get_policy("allot"), 0.0)
    assert sorted(s.job_id for s in plan.starts) == [1, 3]
    assert plan.pending[2].fields["user"] == "alice"


def test_the_projection_uses_the_estimate_then_the_limit_then_the_default() -> None:
    check = _check(1000.0)
    assert check.projected(job(1).gpus(2).estimate(1800).limit(7200).build(), "H100") == 10.0
    assert check.projected(job(1).gpus(2).limit(7200).build(), "H100") == 40.0
    assert check.projected(job(1).gpus(2).build(), "H100") == 20.0  # one hour by default


def test_the_verdict_is_cached_per_owner_and_run_time() -> None:
    assert _check(1.0).scope is CacheScope.COST
    short = job(1).gpus(1).estimate(60).build()
    long = job(2).gpus(1).estimate(7200).build()
    assert admission_key(CacheScope.COST, short) != admission_key(CacheScope.COST, long)
    check = _check(15.0)
    plan = schedule(_snap(check), [long, short], get_policy("fifo"), 0.0)
    assert [s.job_id for s in plan.starts] == [1]  # the long one's "no" is not lent
