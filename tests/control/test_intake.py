"""Group commit of submissions (``allot.control.intake``) over the in-memory control plane:
each submission gets its own answer, a failing group falls back job by job, and closing
stores what was queued."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from allot.control.intake import SubmissionIntake
from allot.control.ports import ConflictError
from allot.control.principal import Principal
from allot.control.records import JobFilter, JobRecord, Launch, NewJob
from allot.control.services import RejectedError
from allot.core.model import Resources
from harness import Harness, make_harness


def submission(name: str = "train", *, queue: str = "default", gpus: int = 1) -> NewJob:
    return NewJob(
        name, "default", "ada", queue, (Resources.of(gpus=gpus),), Launch(("python", "t.py"))
    )


@pytest.fixture
def harness() -> Harness:
    return make_harness()


@pytest.fixture
def intake(harness: Harness) -> Iterator[SubmissionIntake]:
    opened = SubmissionIntake(harness.control)
    yield opened
    opened.close()


def test_a_lone_submission_is_stored_and_answered(
    harness: Harness, intake: SubmissionIntake
) -> None:
    record, created = intake.submit(submission(), principal=Principal.admin("ada")).result(
        timeout=10
    )
    assert created
    assert harness.store.get_job(record.id).job.name == "train"
    assert harness.loop.wakes >= 1


def test_concurrent_submissions_are_each_stored_once(
    harness: Harness, intake: SubmissionIntake
) -> None:
    answers: list[Future[tuple[JobRecord, bool]]] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(25):
            future = intake.submit(
                submission(f"c{n}-{i}"), principal=Principal.admin(f"user-{n % 3}")
            )
            with lock:
                answers.append(future)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [future.result(timeout=10)[0].id for future in answers]
    assert len(set(ids)) == 200
    names = sorted(r.job.name for r in harness.store.list_jobs(_all()))
    assert names == sorted(f"c{n}-{i}" for n in range(8) for i in range(25))


@pytest.fixture
def gate(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Holds the writer inside its first lone submission until set, so that what is submitted
    meanwhile reaches it as one group."""
    opened = threading.Event()
    real = harness.control.submit

    def gated(*args: object, **kwargs: object) -> object:
        opened.wait(10)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(harness.control, "submit", gated)
    return opened


def test_a_rejected_job_fails_alone_and_its_group_is_stored(
    harness: Harness, intake: SubmissionIntake, gate: threading.Event
) -> None:
    first = intake.submit(submission("first"), principal=Principal.admin("ada"))
    good = intake.submit(submission("good"), principal=Principal.admin("ada"))
    bad = intake.submit(submission("bad", queue="nope"), principal=Principal.admin("ada"))
    also = intake.submit(submission("also"), principal=Principal.admin("ada"))
    gate.set()
    assert first.result(timeout=10)[1]
    assert good.result(timeout=10)[1]
    assert also.result(timeout=10)[1]
    with pytest.raises(RejectedError, match="unknown queue 'nope'"):
        bad.result(timeout=10)
    names = sorted(r.job.name for r in harness.store.list_jobs(_all()))
    assert names == ["also", "first", "good"]


def test_one_key_twice_in_a_group_gives_one_job(
    harness: Harness, intake: SubmissionIntake, gate: threading.Event
) -> None:
    blocker = intake.submit(submission("blocker"), principal=Principal.admin("ada"))
    a = intake.submit(
        submission("a"), principal=Principal.admin("ada"), idempotency_key="k", request_hash="h"
    )
    b = intake.submit(
        submission("a"), principal=Principal.admin("ada"), idempotency_key="k", request_hash="h"
    )
    c = intake.submit(
        submission("c"), principal=Principal.admin("ada"), idempotency_key="k", request_hash="x"
    )
    gate.set()
    blocker.result(timeout=10)
    (ra, created_a), (rb, created_b) = a.result(timeout=10), b.result(timeout=10)
    assert ra.id == rb.id
    assert sorted([created_a, created_b]) == [False, True]
    with pytest.raises(ConflictError):
        c.result(timeout=10)
    assert sorted(r.job.name for r in harness.store.list_jobs(_all())) == ["a", "blocker"]


def test_a_cancelled_submission_is_not_stored(
    harness: Harness, intake: SubmissionIntake, gate: threading.Event
) -> None:
    blocker = intake.submit(submission("blocker"), principal=Principal.admin("ada"))
    gone = intake.submit(submission("gone"), principal=Principal.admin("ada"))
    assert gone.cancel()
    gate.set()
    blocker.result(timeout=10)
    intake.close()
    assert [r.job.name for r in harness.store.list_jobs(_all())] == ["blocker"]


def test_close_stores_what_was_queued_then_refuses(harness: Harness) -> None:
    intake = SubmissionIntake(harness.control)
    futures = [
        intake.submit(submission(f"j{i}"), principal=Principal.admin("ada")) for i in range(50)
    ]
    intake.close()
    assert all(f.done() and f.result()[1] for f in futures)
    with pytest.raises(RuntimeError, match="closed"):
        intake.submit(submission(), principal=Principal.admin("ada"))
    intake.close()  # twice is fine


def test_max_group_must_be_positive(harness: Harness) -> None:
    with pytest.raises(ValueError, match="max_group"):
        SubmissionIntake(harness.control, max_group=0)


def _all() -> JobFilter:
    return JobFilter(limit=10_000)
