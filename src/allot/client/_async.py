"""``AsyncClient``: the asynchronous SDK, method for method the same as ``Client`` (each one a
coroutine; ``follow_logs`` an async generator). Every method returns wire models from
``allot.wire.schemas`` and raises an ``ApiError`` subclass when the call fails.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import TypeVar

import httpx

from allot.client import _routes as routes
from allot.client._admin import AsyncAdminCalls
from allot.client._errors import unreachable
from allot.wire.metering import BudgetOut, JobCostOut, UsageReportOut
from allot.wire.profiling import (
    FlavorSpeedOut,
    NodeCheckIn,
    NodeCheckOut,
    ProfileOut,
    RecommendationOut,
    RecommendRequest,
)
from allot.wire.schemas import (
    EventOut,
    ExplainOut,
    Health,
    JobOut,
    JobPage,
    JobSubmission,
    LogChunkOut,
    NodeOut,
    QueueOut,
)

T = TypeVar("T")


class AsyncClient(AsyncAdminCalls):
    """A connection to an allot server, for asyncio code.

    The server and token are found as the ``allot`` command finds them, each from the first
    that gives one: the argument; ``ALLOT_URL`` / ``ALLOT_TOKEN``; else
    ``http://127.0.0.1:8765`` and the admin token a local ``allot up`` wrote into its data
    directory (``$ALLOT_DATA_DIR``, else ``~/.local/share/allot``), a token only ever sent to
    a server on this machine. So ``Client()`` with no arguments talks to a local ``allot up``.
    Raises ``EndpointError`` (a ``ValueError``) for a URL that is not http(s). ``transport``
    replaces httpx's network transport (tests pass one that calls the app in-process).
    Use it as an async context manager, or await ``close()``.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        found = routes.settings(url, token)
        self.url = found.url
        self._http = httpx.AsyncClient(
            base_url=found.url,
            headers=found.headers,
            verify=found.verify,
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _request(self, call: routes.Call[T]) -> httpx.Response:
        return await self._http.request(
            call.method, call.path, params=call.params, json=call.body, headers=call.headers
        )

    async def _send(self, call: routes.Call[T]) -> T:
        try:
            response = await self._request(call)
        except httpx.TransportError as exc:
            if not call.retry_safe:
                raise unreachable(self.url, exc) from exc
            try:
                response = await self._request(call)
            except httpx.TransportError as again:
                raise unreachable(self.url, again) from again
        return routes.decoded(call, response)

    # ------------------------------------------------------------------ jobs

    async def submit(self, submission: JobSubmission, idempotency_key: str | None = None) -> JobOut:
        """Submit a job; returns it as stored (pending, or held if asked).

        Without ``idempotency_key`` a fresh one is made, and a call that loses its connection
        is retried once with the same key, so a job is never submitted twice. Raises
        ``Invalid`` (a malformed job, or one this cluster can never run: unknown queue or
        flavor, larger than any node), ``Conflict`` (the key was used for another request),
        ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        key = idempotency_key or str(uuid.uuid4())
        return await self._send(routes.submit(submission, key))

    async def submit_many(
        self,
        submissions: Sequence[JobSubmission],
        idempotency_key: str | None = None,
        *,
        array: bool = False,
        array_id: int | None = None,
    ) -> list[JobOut]:
        """Submit up to 1,000 jobs in one request (a job array, a sweep); returns them as
        stored, in the order given. All are checked before any is stored, and all are stored
        together; a retry with the same key returns the same jobs. Raises like ``submit``
        (``Invalid`` names the job by index, e.g. ``jobs[3].resources.gpus``). With ``array``
        the jobs form a new job array, named by the first one's id (each job's ``array_id``):
        a dependency on that id waits for every job of it; ``array_id`` adds the jobs to an
        existing array (an array of more than 1,000 jobs is sent in several batches)."""
        key = idempotency_key or str(uuid.uuid4())
        return await self._send(routes.submit_many(submissions, key, array, array_id))

    async def jobs(
        self,
        state: str | Sequence[str] | None = None,
        queue: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> JobPage:
        """One page of jobs matching every given filter, newest first; pass the page's
        ``next`` as ``before`` for the following one. Raises ``Invalid`` for an unknown state
        or a bad cursor, ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.jobs(state, queue, user, tenant, limit, before))

    async def iter_jobs(
        self,
        state: str | Sequence[str] | None = None,
        queue: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[JobOut]:
        """Every job matching the filters, newest first, fetching pages as it goes. Raises
        like ``jobs``."""
        before: str | None = None
        while True:
            page = await self.jobs(state, queue, user, tenant, page_size, before)
            for item in page.items:
                yield item
            if page.next is None:
                return
            before = page.next

    async def job(self, job_id: int) -> JobOut:
        """The job. Raises ``NotFound``, ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.job(job_id))

    async def cancel(self, job_id: int) -> JobOut:
        """Cancel a pending job, or start stopping a running one (it gets its grace period);
        returns the job after the change. Raises ``NotFound``, ``Conflict`` (it has already
        ended), ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.job_action(job_id, "cancel"))

    async def hold(self, job_id: int) -> JobOut:
        """Keep a pending job from starting; returns the job. Raises ``NotFound``,
        ``Conflict`` (it is not pending), ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.job_action(job_id, "hold"))

    async def release(self, job_id: int) -> JobOut:
        """Let a held job be scheduled again; returns the job. Raises ``NotFound``,
        ``Conflict`` (it is not pending), ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.job_action(job_id, "release"))

    async def events(self, job_id: int) -> list[EventOut]:
        """The job's event log, oldest first. Raises ``NotFound``, ``Unauthorized``,
        ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.events(job_id))

    async def explain(self, job_id: int) -> ExplainOut:
        """Why the job is where it is (for a pending job: why it has not started) and what
        would change that. Raises ``NotFound``, ``Unauthorized``, ``Unreachable`` or
        ``ServerError``."""
        return await self._send(routes.explain(job_id))

    async def logs(
        self, job_id: int, task: int = 0, offset: int = 0, limit: int | None = None
    ) -> LogChunkOut:
        """Output of one task of the job's latest run from byte ``offset`` (at most ``limit``
        bytes; the server's default when None). Raises ``NotFound``, ``Invalid`` (no such
        task), ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.logs(job_id, task, offset, limit))

    async def follow_logs(
        self, job_id: int, task: int = 0, poll: float = 0.5
    ) -> AsyncIterator[str]:
        """Text of one task's output as it is written, until the run has ended and all of it
        has been read (waits for a pending job to start). Checks every ``poll`` seconds when
        nothing is new. Raises like ``logs``."""
        import asyncio  # here, not at the top: `import allot.client` stays fast for sync code

        follower = routes.LogFollower(job_id, task)
        while not follower.done:
            text, wait = follower.take(await self._send(follower.call()))
            if text:
                yield text
            if wait:
                await asyncio.sleep(poll)

    # ------------------------------------------------------------------ cluster

    async def nodes(self) -> list[NodeOut]:
        """Every node with its state. Raises ``Unauthorized``, ``Unreachable`` or
        ``ServerError``."""
        return await self._send(routes.nodes())

    async def drain(self, name: str) -> NodeOut:
        """Place nothing new on the node (running work continues); returns the node. Raises
        ``NotFound``, ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.node_action(name, "drain"))

    async def undrain(self, name: str) -> NodeOut:
        """Let the node take new work again; returns the node. Raises ``NotFound``,
        ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.node_action(name, "undrain"))

    async def queues(self) -> list[QueueOut]:
        """Each queue with its nominal GPU quota, what it uses now and its job counts.
        Raises ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.queues())

    # ------------------------------------------------------------------ profiling

    async def profile(
        self,
        job_id: int,
        flops_per_step: float | None = None,
        bytes_per_step: float | None = None,
    ) -> ProfileOut:
        """A profiled job's analysis: time split per rank, top kernels, overlap, data-loader
        stalls, roofline and the headline bottleneck (FLOPs or bytes per step override the
        counted ones). Raises ``NotFound``, ``Conflict`` (not profiled, or no trace yet: the
        message says why), ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.profile(job_id, flops_per_step, bytes_per_step))

    async def recommend(
        self,
        job_id: int,
        steps: int | None = None,
        flops_per_step: float | None = None,
        bytes_per_step: float | None = None,
    ) -> RecommendationOut:
        """Every flavor of the server's catalog for a profiled job, best work per dollar
        first, with the assumptions; records the per-flavor step times. Raises like
        ``profile``, and ``Invalid`` for a bad override."""
        request = RecommendRequest(
            steps=steps, flops_per_step=flops_per_step, bytes_per_step=bytes_per_step
        )
        return await self._send(routes.recommend(job_id, request))

    async def record_node_check(self, name: str, check: NodeCheckIn) -> NodeCheckOut:
        """Store a node check's measurements, judged against the node's flavor (drains the
        node when ``check.drain`` and it is below expected). Raises ``NotFound``, ``Invalid``,
        ``Unauthorized`` (also: not a cluster admin), ``Unreachable`` or
        ``ServerError``."""
        return await self._send(routes.node_check(name, check))

    async def flavor_speeds(self, job_class: str | None = None) -> list[FlavorSpeedOut]:
        """Recorded step times per job class and flavor (measured or estimated). Raises
        ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.flavor_speeds(job_class))

    # ------------------------------------------------------------------ metering

    async def usage(
        self,
        by: str = "tenant",
        since: str = "30d",
        until: str | None = None,
        bucket: str | None = None,
        tenant: str | None = None,
    ) -> UsageReportOut:
        """Usage and cost per group (``by``: tenant, user, queue, flavor, comma-separated)
        from ``since`` (UNIX seconds or a span back from now, ``30d``), per time ``bucket``
        (``1d``) when given, of the caller's tenants. Raises ``Invalid``, ``Forbidden``
        (another tenant), ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.usage(by, since, until, bucket, tenant))

    async def job_cost(self, job_id: int) -> JobCostOut:
        """What the job's runs held and cost so far. Raises ``NotFound``,
        ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.job_cost(job_id))

    async def budgets(self) -> list[BudgetOut]:
        """The budgets of the caller's tenants and what each spent this period. Raises
        ``Unauthorized``, ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.budgets())

    async def health(self) -> Health:
        """The server's health (needs no token). Raises ``Unreachable`` or ``ServerError``."""
        return await self._send(routes.health())
