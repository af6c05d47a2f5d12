"""The synchronous SDK against the in-process API: every method, retries that never submit
twice, and the mapping of failures to ``ApiError`` subclasses."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from allot.client import (
    DEFAULT_URL,
    ApiError,
    Client,
    Conflict,
    Dependency,
    Invalid,
    JobSubmission,
    NotFound,
    ServerError,
    TaskResources,
    Unauthorized,
    Unreachable,
)
from allot.core.model import JobState
from harness import Harness, InProcessTransport

URL = "http://allot.test"
SLEEP = JobSubmission(command=["sleep", "60"], resources=TaskResources(gpus=1))


class LosesAnswers(httpx.BaseTransport):
    """Passes requests on, but loses the first ``lost`` answers as a broken connection would."""

    def __init__(self, inner: httpx.BaseTransport, lost: int) -> None:
        self.inner, self.lost = inner, lost
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.inner.handle_request(request)
        if self.lost:
            self.lost -= 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


class Refuses(httpx.BaseTransport):
    """A server that is not there."""

    def __init__(self) -> None:
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def test_submit_and_read_back(client: Client, harness: Harness) -> None:
    job = client.submit(SLEEP)
    assert (job.state, job.user, job.resources.gpus) == ("pending", "sdk", 1.0)
    assert client.job(job.id) == job
    assert harness.store.get_job(job.id).job.launch.argv == ("sleep", "60")


def test_submit_sends_only_the_fields_the_caller_set(client: Client, harness: Harness) -> None:
    job = client.submit(JobSubmission(command="true", hold=True, env={"TOKEN": "abc"}))
    assert job.held is True
    assert job.env_keys == ["TOKEN"]


def test_the_same_key_gives_the_same_job(client: Client) -> None:
    first = client.submit(SLEEP, idempotency_key="k1")
    assert client.submit(SLEEP, idempotency_key="k1").id == first.id
    with pytest.raises(Conflict):
        client.submit(JobSubmission(command="other"), idempotency_key="k1")


def test_a_lost_answer_is_retried_once_with_the_same_key(
    transport: InProcessTransport, harness: Harness
) -> None:
    flaky = LosesAnswers(transport, lost=1)
    with Client(URL, "tok-sdk-0123456789", transport=flaky) as client:
        job = client.submit(SLEEP)
    keys = [r.headers["Idempotency-Key"] for r in flaky.requests]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert [r.id for r in harness.store.pending_jobs()] == [job.id]


def test_two_lost_answers_raise_unreachable_and_other_calls_are_not_retried() -> None:
    refusing = Refuses()
    with Client("http://127.0.0.1:9", "t", transport=refusing) as client:
        with pytest.raises(Unreachable) as raised:
            client.submit(SLEEP)
        assert refusing.calls == 2
        message = str(raised.value)
        assert "http://127.0.0.1:9" in message
        assert "allot up" in message
        assert raised.value.status is None
        with pytest.raises(Unreachable):
            client.nodes()
        assert refusing.calls == 3


def test_jobs_pages_and_iter_jobs_follows_the_cursor(client: Client, harness: Harness) -> None:
    ids = [client.submit(SLEEP).id for _ in range(5)]
    harness.start(ids[0])
    page = client.jobs(limit=2)
    assert [j.id for j in page.items] == [ids[4], ids[3]]
    assert page.next is not None
    assert [j.id for j in client.jobs(limit=2, before=page.next).items] == [ids[2], ids[1]]
    assert [j.id for j in client.iter_jobs(page_size=2)] == ids[::-1]
    assert [j.id for j in client.iter_jobs(state="running")] == [ids[0]]
    assert [j.id for j in client.jobs(state=["running", "pending"], user="sdk").items] == ids[::-1]
    assert client.jobs(queue="default", tenant="nobody").items == []


def test_cancel_hold_release_events_and_explain(client: Client, harness: Harness) -> None:
    job = client.submit(SLEEP)
    assert client.hold(job.id).held is True
    assert client.explain(job.id).reason == "held"
    assert client.release(job.id).held is False
    assert client.cancel(job.id).state == "cancelled"
    kinds = [e.kind for e in client.events(job.id)]
    assert kinds == ["submitted", "held", "released", "cancelled"]


def test_nodes_drain_undrain_queues_and_health(client: Client) -> None:
    assert [n.name for n in client.nodes()] == ["gpu-1", "gpu-2"]
    assert client.drain("gpu-2").state == "draining"
    assert client.undrain("gpu-2").state == "up"
    assert [q.name for q in client.queues()] == ["default"]
    assert client.health().status == "ok"


def test_logs_and_follow_logs_until_the_run_has_finished(client: Client, harness: Harness) -> None:
    job = client.submit(SLEEP)
    run = harness.start(job.id)
    harness.executor.write_log(run.run_id, 0, b"step 1\n")
    chunk = client.logs(job.id)
    assert (chunk.data, chunk.next_offset, chunk.finished) == ("step 1\n", 7, False)
    assert client.logs(job.id, offset=5, limit=1).data == "1"
    following = client.follow_logs(job.id, poll=0)
    assert next(following) == "step 1\n"
    harness.executor.write_log(run.run_id, 0, b"step 2\n")
    harness.finish(job.id)
    assert list(following) == ["step 2\n"]


def test_follow_logs_waits_for_a_pending_job_and_moves_to_a_new_run(
    transport: InProcessTransport, harness: Harness
) -> None:
    job_id = 0
    polls = 0

    class Scripted(httpx.BaseTransport):
        """Moves the job along while ``follow_logs`` polls."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            nonlocal polls
            if request.url.path.endswith("/logs"):
                polls += 1
                if polls == 3:  # the job starts and writes
                    first = harness.start(job_id)
                    harness.executor.write_log(first.run_id, 0, b"first run\n")
                elif polls == 5:  # it is preempted, runs again elsewhere and ends
                    harness.finish(job_id, JobState.PENDING, None, "preempted")
                    second = harness.start(job_id, node="gpu-2")
                    harness.executor.write_log(second.run_id, 0, b"second run\n")
                    harness.finish(job_id)
            return transport.handle_request(request)

    with Client(URL, "tok-sdk-0123456789", transport=Scripted()) as client:
        job_id = client.submit(SLEEP).id
        assert list(client.follow_logs(job_id, poll=0)) == ["first run\n", "second run\n"]


def test_errors_map_to_api_error_subclasses(
    client: Client, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(NotFound) as missing:
        client.job(999)
    assert (missing.value.status, missing.value.detail) == (404, "job 999 does not exist")
    assert missing.value.type == "https://allot.dev/problems/not-found"
    assert missing.value.instance == "/v1/jobs/999"
    with pytest.raises(Invalid) as rejected:
        client.submit(JobSubmission(command="true", queue="research"))
    assert [(e.field, e.rule) for e in rejected.value.errors] == [
        ("queue", "unknown queue 'research'; known queues: default")
    ]
    assert str(rejected.value).startswith("queue: unknown queue")
    with pytest.raises(Invalid) as bad_filter:
        client.jobs(state="sleeping")
    assert [e.field for e in bad_filter.value.errors] == ["state[0]"]
    job = client.submit(SLEEP)
    client.cancel(job.id)
    with pytest.raises(Conflict):
        client.cancel(job.id)

    def broken() -> list[object]:
        raise RuntimeError("boom")

    monkeypatch.setattr(harness.control, "queues", broken)
    with pytest.raises(ServerError) as failed:
        client.queues()
    assert failed.value.status == 500
    assert "boom" not in str(failed.value)


def test_a_wrong_or_missing_token_is_unauthorized(app: FastAPI) -> None:
    with Client(URL, "wrong", transport=InProcessTransport(app)) as client:
        with pytest.raises(Unauthorized) as raised:
            client.nodes()
        assert raised.value.status == 401
        assert client.health().status == "ok"
    with Client(URL, "", transport=InProcessTransport(app)) as client, pytest.raises(Unauthorized):
        client.nodes()


def test_an_error_page_that_is_not_a_problem_still_raises() -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad Gateway</html>")

    bad_gateway = httpx.MockTransport(gateway)
    with Client(URL, "t", transport=bad_gateway) as client, pytest.raises(ServerError) as raised:
        client.nodes()
    assert raised.value.status == 502
    assert "Bad Gateway" in str(raised.value)


def test_an_unreadable_answer_is_an_api_error() -> None:
    def odd(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"unexpected": True})

    expected = "not what this client expects"
    server = httpx.MockTransport(odd)
    with Client(URL, "t", transport=server) as client, pytest.raises(ApiError, match=expected):
        client.job(1)


def test_url_and_token_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "ok"})

    monkeypatch.setenv("ALLOT_URL", "http://gpu-box:9000/")
    monkeypatch.setenv("ALLOT_TOKEN", "from-env")
    with Client(transport=httpx.MockTransport(record)) as client:
        client.health()
    assert client.url == "http://gpu-box:9000"
    assert str(seen[0].url) == "http://gpu-box:9000/healthz"
    assert seen[0].headers["Authorization"] == "Bearer from-env"
    monkeypatch.delenv("ALLOT_URL")
    monkeypatch.delenv("ALLOT_TOKEN")
    with Client(transport=httpx.MockTransport(record)) as client:
        client.health()
    assert client.url == DEFAULT_URL
    assert "Authorization" not in seen[1].headers


def test_dependencies_and_arrays(client: Client, harness: Harness) -> None:
    first = client.submit(SLEEP)
    array = client.submit_many([SLEEP, SLEEP], array=True)
    assert [j.array_id for j in array] == [array[0].id] * 2
    more = client.submit_many([SLEEP], array_id=array[0].id)
    assert more[0].array_id == array[0].id
    after = [Dependency(job=first.id), Dependency(job=array[0].id, condition="any")]
    job = client.submit(SLEEP.model_copy(update={"after": after}))
    assert job.after == after
    assert [d.job_id for d in harness.store.get_job(job.id).job.after] == [first.id, array[0].id]
    with pytest.raises(Invalid) as refused:
        client.submit(SLEEP.model_copy(update={"after": [Dependency(job=999)]}))
    assert [(p.field, p.rule) for p in refused.value.errors] == [
        ("after[0].job", "job 999 does not exist")
    ]
