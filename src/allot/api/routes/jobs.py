"""Routes of ``/v1/jobs``: submit, list, inspect, cancel, hold, release, events, explain, logs.

Each route parses its input, calls one ``ControlPlane`` use case as the authenticated actor,
and maps the records it gets back to wire models; the use cases own every rule.
Routes are plain functions: the store is synchronous, so FastAPI runs them in its thread pool.
The one exception is the hot path, ``POST /v1/jobs``: it is ``async`` and hands the job to the
group-commit intake, awaiting the commit without a thread-pool hop, and sends the stored job
already serialised.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from allot.api import wire
from allot.api.audit import note
from allot.api.auth import Caller
from allot.api.context import Control, Intake
from allot.api.problems import documented
from allot.control.records import NEW_ARRAY, JobFilter, JobRecord
from allot.core.model import JobState
from allot.wire.schemas import (
    MAX_IDEMPOTENCY_KEY,
    EventOut,
    ExplainOut,
    JobBatch,
    JobOut,
    JobPage,
    JobStateName,
    JobSubmission,
    LogChunkOut,
)

MAX_PAGE = 1000
MAX_LOG_CHUNK = 1 << 20
MAX_ID = (1 << 63) - 1  # ids are signed 64-bit integers
# No file offset is larger (ext4 and XFS stop well below; Linux's own limit is 2^63 - 1).
MAX_LOG_OFFSET = (1 << 40) - 1
# A page of jobs stops early, with a cursor to the rest, once its items pass this size.
MAX_PAGE_BYTES = 4 << 20

JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="A job's id.")]
Filter = Annotated[str | None, Query(min_length=1, max_length=200)]
CURSOR = r"^[1-9][0-9]{0,18}$"  # a job id

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobOut,
    responses={
        200: {"model": JobOut, "description": "A retry: the job first submitted with this key"},
        **documented(403, 409, 413),
    },
)
async def submit_job(
    submission: JobSubmission,
    control: Control,
    intake: Intake,
    caller: Caller,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY,
            description="Makes retries safe: the same key returns the job it first created.",
        ),
    ] = None,
) -> Response:
    """Submit a job. 201 with the new job; 200 with the original job for a retried key."""
    priority = submission.priority
    if isinstance(priority, str):  # the classes come from the store: read them off the loop
        classes = (await run_in_threadpool(control.quotas)).priority_classes
        priority = wire.resolve_priority(priority, classes)
    accepted = intake.submit(
        wire.new_job(submission, priority=priority),
        principal=caller,
        idempotency_key=idempotency_key,
        request_hash=wire.request_hash(submission),
    )
    record, created = await asyncio.wrap_future(accepted)
    note(request, f"job {record.id}", tenant=record.job.tenant, job_id=record.id,
         reason=f"submitted to queue {record.job.queue}" if created else "a retry")  # fmt: skip
    return Response(
        wire.job_out(record).model_dump_json(),
        status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        headers={"Location": f"/v1/jobs/{record.id}"},
        media_type="application/json",
    )


@router.post(
    "/batch",
    status_code=status.HTTP_201_CREATED,
    responses=documented(403, 409, 413),
)
def submit_jobs(
    batch: JobBatch,
    control: Control,
    caller: Caller,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY,
            description="Makes retries safe: job i of the batch is keyed '<key>:<i>'.",
        ),
    ] = None,
) -> list[JobOut]:
    """Submit up to 1,000 jobs at once (a job array, a sweep): all are checked before any is
    stored, and all are stored together. Returns them in the order given. With ``array`` they
    form a new job array named by the first job's id; ``array_id`` adds them to one."""
    classes = control.quotas().priority_classes if _named_priorities(batch) else {}
    jobs = [
        wire.new_job(submission, priority=wire.resolve_priority(submission.priority, classes))
        for submission in batch.jobs
    ]
    keys = [None if idempotency_key is None else f"{idempotency_key}:{i}" for i in range(len(jobs))]
    results = control.submit_many(
        jobs,
        principal=caller,
        idempotency_keys=keys,
        request_hashes=[wire.request_hash(submission) for submission in batch.jobs],
        array=NEW_ARRAY if batch.array else batch.array_id,
    )
    first, last = results[0][0], results[-1][0]
    tenants = {record.job.tenant for record, _ in results}
    note(request, f"jobs {first.id}..{last.id}", tenant=tenants.pop() if len(tenants) == 1 else "",
         job_id=first.id, reason=f"{len(results)} jobs submitted")  # fmt: skip
    return [wire.job_out(record) for record, _ in results]


def _named_priorities(batch: JobBatch) -> bool:
    return any(isinstance(submission.priority, str) for submission in batch.jobs)


def _cursor(before: str | None) -> int | None:
    if before is None:
        return None
    if before.isascii() and before.isdigit() and 0 < int(before) <= MAX_ID:
        return int(before)
    error = {
        "type": "value_error",
        "loc": ("query", "before"),
        "msg": "must be the 'next' cursor of a previous page",
        "input": before,
    }
    raise RequestValidationError([error])


@router.get("", responses=documented(422))
def list_jobs(
    control: Control,
    caller: Caller,
    state: Annotated[list[JobStateName] | None, Query(description="Repeat for several.")] = None,
    queue: Filter = None,
    user: Filter = None,
    tenant: Filter = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    before: Annotated[
        str | None, Query(pattern=CURSOR, description="The 'next' cursor of a page.")
    ] = None,
) -> JobPage:
    """Jobs matching every given filter among those the caller may see (its tenants'; every
    job for a cluster admin), newest first, one page at a time; 422 for an unknown queue (the
    problem names the known ones). A page ends early, with a ``next`` cursor, once its jobs
    pass 4 MiB, so an answer stays bounded however large the jobs are."""
    where = JobFilter(
        states=tuple(JobState(s) for s in state or ()),
        queue=queue,
        user=user,
        tenant=tenant,
        # One more than asked tells whether another page follows, without an empty last page.
        limit=limit + 1,
        before=_cursor(before),
    )
    records = control.list_jobs(where, principal=caller)
    items: list[JobOut] = []
    size = 0
    for record in records[:limit]:
        if items and size >= MAX_PAGE_BYTES:
            break
        item = wire.job_out(record, control.estimates.estimate(record.id))
        size += wire.wire_size(item)
        items.append(item)
    following = str(items[-1].id) if len(records) > len(items) else None
    return JobPage(items=items, next=following)


@router.get("/{job_id:int}", responses=documented(404))
def get_job(job_id: JobId, control: Control, caller: Caller) -> JobOut:
    """One job (404 for a job of a tenant the caller is not in, as for one that does not
    exist)."""
    record = control.get(job_id, principal=caller)
    gpu_usage = control.store.gpu_summaries(record.id) or None  # null: nothing recorded
    return wire.job_out(record, control.estimates.estimate(record.id), gpu_usage)


def _acted(request: Request, record: JobRecord, what: str) -> JobOut:
    note(request, f"job {record.id}", tenant=record.job.tenant, job_id=record.id, reason=what)
    return wire.job_out(record)


@router.post("/{job_id:int}/cancel", responses=documented(403, 404, 409))
def cancel_job(job_id: JobId, control: Control, caller: Caller, request: Request) -> JobOut:
    """Cancel a pending job, or stop a running one (it gets its grace period)."""
    return _acted(request, control.cancel(job_id, principal=caller), "cancelled")


@router.post("/{job_id:int}/hold", responses=documented(403, 404, 409))
def hold_job(job_id: JobId, control: Control, caller: Caller, request: Request) -> JobOut:
    """Keep a pending job from starting until it is released."""
    return _acted(request, control.hold(job_id, principal=caller), "held")


@router.post("/{job_id:int}/release", responses=documented(403, 404, 409))
def release_job(job_id: JobId, control: Control, caller: Caller, request: Request) -> JobOut:
    """Let a held job be scheduled again."""
    return _acted(request, control.release(job_id, principal=caller), "released")


@router.get("/{job_id:int}/events", responses=documented(404))
def job_events(job_id: JobId, control: Control, caller: Caller) -> list[EventOut]:
    """The job's event log, oldest first."""
    return [wire.event_out(e) for e in control.events(job_id, principal=caller)]


@router.get("/{job_id:int}/explain", responses=documented(404))
def explain_job(job_id: JobId, control: Control, caller: Caller) -> ExplainOut:
    """Why the job is where it is (for a pending job: why it has not started, and when it is
    expected to start), and the remedy."""
    explained = control.explain(job_id, principal=caller)
    return wire.explain_out(explained, control.estimates.estimate(job_id))


@router.get("/{job_id:int}/logs", responses=documented(404))
def job_logs(
    job_id: JobId,
    control: Control,
    caller: Caller,
    task: Annotated[int, Query(ge=0, le=4095)] = 0,
    offset: Annotated[int, Query(ge=0, le=MAX_LOG_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_CHUNK)] = 1 << 16,
) -> LogChunkOut:
    """Output of one task of the job's latest run, from ``offset``."""
    chunk = control.logs(job_id, principal=caller, task=task, offset=offset, limit=limit)
    return wire.log_out(chunk, offset=offset, limit=limit)
