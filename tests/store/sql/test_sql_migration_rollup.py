"""Revision 0013 on a database that already holds usage records: it rolls them up per day into
``usage_daily`` exactly as ending each run does; and ending a run adds to the rollup in its own
transaction (a run that cannot end adds nothing)."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from sqlalchemy import select, text

from allot.control.ports import ConflictError
from allot.core.model import JobState
from allot.metering.rollup import DAY
from allot.store import SqlStore
from allot.store.migrations import alembic_config
from allot.store.tables import UsageDayRow
from store_builders import new_job, run_for

START = 20_000 * DAY
RUNS = [  # (start, end) offsets from START: across midnights, a whole day, at midnight, empty
    (3600.0, 3 * DAY + 7.5),
    (DAY, 2 * DAY),
    (-100.0, 0.0),
    (5.0, 5.0),
    (DAY - 1.0, DAY + 1.0),
]


def _daily(store: SqlStore) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(UsageDayRow.__table__).order_by(*UsageDayRow.__table__.c))
        return [tuple(row) for row in rows]


def _run_all(store: SqlStore) -> None:
    for i, (start, end) in enumerate(RUNS):
        job = new_job(tenant=("vision", "nlp")[i % 2], user="ada", gpus=1 + i, tasks=1 + i % 2)
        job_id = store.submit(job, at=0.0, actor="ada")[0].id
        nodes = ("n1", "n2")[: 1 + i % 2]
        store.begin_run(run_for(job_id, f"r{i}", at=START + start, gpus=1 + i, nodes=nodes),
                        actor="s")  # fmt: skip
        outcome = JobState.PENDING if i % 2 else JobState.SUCCEEDED
        store.end_run(f"r{i}", outcome=outcome, exit_code=0, reason="x", at=START + end,
                      actor="e")  # fmt: skip


def test_revision_0013_rolls_up_the_records_as_ending_runs_does(store: SqlStore) -> None:
    _run_all(store)
    written = _daily(store)
    days = {row[0] for row in written}
    assert days == {START - DAY, *(START + d * DAY for d in range(4))}
    whole = [row for row in written if row[0] == START + DAY and row[1] == "nlp"]
    assert whole[0][8] == 2000 * 2  # the run from midnight to midnight held all of day 1
    with store.engine.begin() as conn:
        command.downgrade(alembic_config(store.engine.url, conn), "0012")
    store.migrate()
    filled = _daily(store)
    assert [row[:5] for row in filled] == [row[:5] for row in written]
    for a, b in zip(filled, written, strict=True):
        assert a[5:] == pytest.approx(b[5:], rel=1e-12)


def test_a_run_that_cannot_end_adds_nothing_to_the_rollup(store: SqlStore) -> None:
    _run_all(store)
    before = _daily(store)
    with pytest.raises(ConflictError):
        store.end_run("r0", outcome=JobState.FAILED, exit_code=1, reason="again",
                      at=START + 9 * DAY, actor="e")  # fmt: skip
    assert _daily(store) == before
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM usage_records")).scalar_one() == len(RUNS)
