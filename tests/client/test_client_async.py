"""The asynchronous SDK against the in-process API (httpx's ASGI transport): the same calls,
retries and error mapping as the synchronous one."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from allot.client import (
    AsyncClient,
    Conflict,
    Invalid,
    JobSubmission,
    NotFound,
    TaskResources,
    Unauthorized,
    Unreachable,
)
from harness import Harness

pytestmark = pytest.mark.anyio

URL = "http://allot.test"
SLEEP = JobSubmission(command=["sleep", "60"], resources=TaskResources(gpus=0.5))


class LosesAnswers(httpx.AsyncBaseTransport):
    """Passes requests on, but loses the first ``lost`` answers as a broken connection would."""

    def __init__(self, inner: httpx.AsyncBaseTransport, lost: int) -> None:
        self.inner, self.lost = inner, lost
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = await self.inner.handle_async_request(request)
        if self.lost:
            self.lost -= 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


async def test_every_call(aclient: AsyncClient, harness: Harness) -> None:
    job = await aclient.submit(SLEEP)
    assert (job.state, job.resources.gpus) == ("pending", 0.5)
    assert await aclient.job(job.id) == job
    assert (await aclient.hold(job.id)).held is True
    assert (await aclient.explain(job.id)).reason == "held"
    assert (await aclient.release(job.id)).held is False
    assert [j.id for j in (await aclient.jobs(state="pending")).items] == [job.id]
    assert (await aclient.cancel(job.id)).state == "cancelled"
    assert [e.kind for e in await aclient.events(job.id)][-1] == "cancelled"
    assert [n.name for n in await aclient.nodes()] == ["gpu-1", "gpu-2"]
    assert (await aclient.drain("gpu-1")).state == "draining"
    assert (await aclient.undrain("gpu-1")).state == "up"
    assert [q.name for q in await aclient.queues()] == ["default"]
    assert (await aclient.health()).status == "ok"
    assert (await aclient.logs(job.id)).finished is True


async def test_iter_jobs_follows_the_cursor(aclient: AsyncClient) -> None:
    ids = [(await aclient.submit(SLEEP)).id for _ in range(5)]
    assert [j.id async for j in aclient.iter_jobs(page_size=2)] == ids[::-1]


async def test_follow_logs_ends_when_the_run_has_finished(
    aclient: AsyncClient, harness: Harness
) -> None:
    job = await aclient.submit(SLEEP)
    run = harness.start(job.id)
    harness.executor.write_log(run.run_id, 0, b"loading\n")
    following = aclient.follow_logs(job.id, poll=0)
    assert await anext(following) == "loading\n"
    harness.executor.write_log(run.run_id, 0, b"done\n")
    harness.finish(job.id)
    assert [text async for text in following] == ["done\n"]


async def test_a_lost_answer_is_retried_once_with_the_same_key(
    app: FastAPI, token: str, harness: Harness
) -> None:
    flaky = LosesAnswers(httpx.ASGITransport(app=app), lost=1)
    async with AsyncClient(URL, token, transport=flaky) as client:
        job = await client.submit(SLEEP)
    keys = {r.headers["Idempotency-Key"] for r in flaky.requests}
    assert (len(flaky.requests), len(keys)) == (2, 1)
    assert [r.id for r in harness.store.pending_jobs()] == [job.id]


async def test_two_lost_answers_raise_unreachable(app: FastAPI, token: str) -> None:
    flaky = LosesAnswers(httpx.ASGITransport(app=app), lost=2)
    async with AsyncClient(URL, token, transport=flaky) as client:
        with pytest.raises(Unreachable, match="allot up"):
            await client.submit(SLEEP)


async def test_errors_map_to_api_error_subclasses(aclient: AsyncClient, app: FastAPI) -> None:
    with pytest.raises(NotFound):
        await aclient.job(999)
    with pytest.raises(Invalid) as rejected:
        await aclient.submit(JobSubmission(command="true", flavors=["TPUv5"]))
    assert [e.field for e in rejected.value.errors] == ["flavors"]
    await aclient.submit(SLEEP, idempotency_key="same")
    with pytest.raises(Conflict):
        await aclient.submit(JobSubmission(command="true"), idempotency_key="same")
    async with AsyncClient(URL, "wrong", transport=httpx.ASGITransport(app=app)) as stranger:
        with pytest.raises(Unauthorized):
            await stranger.nodes()
