"""Group commit (``allot.control.intake``) on the real stores: many threads submitting at once,
some retrying with the same idempotency key, each job stored exactly once and every retry
answered with the job it first created (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from allot.control.intake import SubmissionIntake
from allot.control.principal import Principal
from allot.control.records import JobFilter, JobRecord
from allot.control.services import ControlPlane
from allot.core.quota.config import QueueSpec, QuotaConfig, TenantSpec
from allot.store import SqlStore
from harness import FakeExecutor, FakeScheduler, ManualClock, default_nodes
from store_builders import new_job

CLIENTS = 6
PER_CLIENT = 30


def control_over(store: SqlStore) -> ControlPlane:
    clock = ManualClock()
    executor = FakeExecutor(default_nodes())
    store.sync_nodes(executor.inventory(), at=clock.now())
    quotas = QuotaConfig((TenantSpec("vision"),), (QueueSpec("research", "vision"),))
    store.save_quotas(quotas, at=clock.now())
    return ControlPlane(store, executor, clock, FakeScheduler(store, clock))  # type: ignore[arg-type]


def test_concurrent_submissions_and_retries_store_each_job_once(store: SqlStore) -> None:
    intake = SubmissionIntake(control_over(store))
    answers: dict[str, list[Future[tuple[JobRecord, bool]]]] = {}
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(PER_CLIENT):
            key = f"{n}-{i}"
            # Every third job is sent twice in a row, as a client retrying would.
            for _ in range(2 if i % 3 == 0 else 1):
                future = intake.submit(
                    new_job(key),
                    principal=Principal.admin(f"user-{n % 2}"),
                    idempotency_key=key,
                    request_hash=key,
                )
                with lock:
                    answers.setdefault(key, []).append(future)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        for key, futures in answers.items():
            results = [f.result(timeout=30) for f in futures]
            assert len({record.id for record, _ in results}) == 1, key
            assert [created for _, created in results].count(True) == 1, key
    finally:
        intake.close()
    stored = store.list_jobs(JobFilter(limit=10_000))
    assert len(stored) == CLIENTS * PER_CLIENT
    assert sorted(r.job.name for r in stored) == sorted(answers)
