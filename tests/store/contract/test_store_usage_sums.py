"""The ledger summed by the store: ``usage_sums`` over any segments equals the overlap of every
ended run with them (no run counted twice across requeues after preemption, failures and
restarts of the same job; none lost), grouped by tenant, user, queue and flavor; and an event
about no job (a budget's warning) is appended."""

from __future__ import annotations

import itertools
import random

import pytest

from allot.control.ports import Store
from allot.core.model import JobState
from allot.metering.ledger import GROUPS
from store_builders import new_job, run_for


def _scenario(store: Store, seed: int) -> list[tuple[tuple[str, ...], str, float, float, int]]:
    """Jobs run, get preempted and requeued, fail or succeed; returns every ended run as
    (tenant, user, queue), flavor, start, end, milli-GPUs."""
    rng = random.Random(seed)
    ended = []
    for _ in range(8):
        tenant, user = rng.choice(("vision", "nlp")), rng.choice(("ada", "bo"))
        gpus = rng.choice((1, 2))
        job_id = store.submit(
            new_job(tenant=tenant, user=user, queue=f"q-{tenant}", gpus=gpus), at=0.0, actor=user
        )[0].id
        at = rng.uniform(0, 100)
        for attempt in itertools.count(1):
            flavor = rng.choice(("H100-80G", "A100"))
            run_id = f"r{job_id}-{attempt}"
            store.begin_run(run_for(job_id, run_id, at=at, gpus=gpus, flavor=flavor), actor="s")
            end = at + rng.uniform(0, 50)
            outcome = rng.choice((JobState.PENDING, JobState.SUCCEEDED, JobState.FAILED))
            store.end_run(run_id, outcome=outcome, exit_code=0, reason="x", at=end, actor="e")
            ended.append(((tenant, user, f"q-{tenant}"), flavor, at, end, gpus * 1000))
            if outcome is not JobState.PENDING:
                break
            at = end + rng.uniform(0, 10)
    return ended


@pytest.mark.parametrize("seed", [1, 2])
def test_sums_equal_the_runs_overlaps(store: Store, seed: int) -> None:
    runs = _scenario(store, seed)
    assert len(store.usage()) == len(runs)
    cuts = [0.0, 37.5, 80.0, 120.0, 400.0]
    for by in (("tenant",), ("tenant", "user"), ("queue", "flavor"), ("flavor",)):
        got: dict[tuple[tuple[str, ...], str, float], float] = {}
        for s in store.usage_sums(by, cuts):
            got[s.key, s.flavor, s.segment] = s.gpu_milli_seconds
        want: dict[tuple[tuple[str, ...], str, float], float] = {}
        for owner, flavor, start, end, gpu in runs:
            fields = dict(zip(GROUPS, (*owner, flavor), strict=True))
            key = tuple(fields[name] for name in by)
            for lo, hi in itertools.pairwise(cuts):
                overlap = min(end, hi) - max(start, lo)
                if overlap > 0:
                    slot = (key, flavor, lo)
                    want[slot] = want.get(slot, 0.0) + gpu * overlap
        assert got.keys() == want.keys()
        for slot, value in want.items():
            assert got[slot] == pytest.approx(value)
    vision = store.usage_sums(("tenant",), cuts, {"vision"})
    assert {s.key for s in vision} <= {("vision",)}


def test_an_event_about_no_job_is_appended(store: Store) -> None:
    store.record_event(
        None, "budget_warning", at=5.0, actor="metering", reason="past its soft limit",
        data={"tenant": "vision", "spent": 9.5},
    )  # fmt: skip
    event = store.events()[-1]
    assert (event.kind, event.job_id, event.from_state, event.to_state) == (
        "budget_warning",
        None,
        None,
        None,
    )
    assert event.data["spent"] == 9.5
