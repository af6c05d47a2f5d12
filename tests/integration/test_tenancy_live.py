"""Tenancy through a real ``allot up``: the operator (the admin token ``allot up`` wrote) sets
up two tenants with ``allot admin``, a member of one submits and runs a job with its own
token, sees nothing of the other tenant, cannot drain a node, and every step is in the audit
log; the SQLite files are private to the server's user; a time limit longer than 2^31 ms is
still enforced."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from allot.client import Client, Forbidden, NotFound
from allot.wire.schemas import JobSubmission
from live_server import LiveServer, allot_command


def _admin(server: LiveServer, token: str, *args: str) -> str:
    env = {**os.environ, "ALLOT_URL": server.url, "ALLOT_TOKEN": token}
    done = subprocess.run(
        [*allot_command(), "admin", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_tenants_users_tokens_and_the_audit_log_on_a_real_server(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", tmp_path / "server.log")
    server.start("--gpus", "2")
    try:
        root = (tmp_path / "data" / "admin-token").read_text().strip()
        for name in ("allot.db", "allot.db-wal"):
            assert stat.S_IMODE((tmp_path / "data" / name).stat().st_mode) == 0o600
        _admin(server, root, "tenant-add", "vision")
        _admin(server, root, "tenant-add", "nlp")
        _admin(server, root, "queue", "see", "--tenant", "vision", "--unconstrained")
        _admin(server, root, "queue", "read", "--tenant", "nlp", "--quota", "gpu:gpu=1")
        _admin(server, root, "user-add", "ada")
        _admin(server, root, "role", "ada", "vision", "member")
        secret = _admin(server, root, "token-create", "laptop", "--user", "ada").strip()
        assert secret.startswith("allot_")
        with Client(server.url, secret) as ada, Client(server.url, root) as admin:
            assert ada.me().tenants == {"vision": "member"}
            other = admin.submit(JobSubmission(command=["true"], queue="read", hold=True))
            job = ada.submit(JobSubmission(command=["true"], queue="see"))
            assert (job.user, job.tenant) == ("ada", "vision")
            deadline = time.monotonic() + 30
            while ada.job(job.id).state != "succeeded":
                assert time.monotonic() < deadline, ada.job(job.id)
                time.sleep(0.1)
            assert [j.id for j in ada.jobs(state=[]).items] == [job.id]
            with pytest.raises(NotFound, match=f"^job {other.id} does not exist$"):
                ada.job(other.id)
            with pytest.raises(Forbidden):
                ada.drain("local")
            # An admin action shows in the audit log, with who, what and how it ended.
            deadline = time.monotonic() + 10
            while True:
                entries = admin.audit(actor="ada").items
                if len(entries) >= 2:
                    break
                assert time.monotonic() < deadline, entries
                time.sleep(0.2)
            outcomes = {(e.action, e.outcome) for e in entries}
            assert ("submit_job", "ok") in outcomes
            assert ("drain_node", "denied") in outcomes
            starts = admin.audit(job=job.id).items
            assert any(e.actor == "scheduler" and e.action == "start" for e in starts)
            assert all(e.tenant == "vision" for e in starts)
        listed = json.loads(_admin(server, root, "tokens", "--user", "ada", "-o", "json"))
        assert [t["name"] for t in listed] == ["laptop"]
        assert secret not in json.dumps(listed)
        _admin(server, root, "token-revoke", str(listed[0]["id"]))
        refused = httpx.get(
            f"{server.url}/v1/jobs", headers={"Authorization": f"Bearer {secret}"}, timeout=10
        )
        assert refused.status_code == 401
        assert secret not in server.output()
    finally:
        server.stop()


def test_a_time_limit_beyond_what_poll_holds_is_enforced(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "data", tmp_path / "server.log")
    server.start("--gpus", "1")
    try:
        root = (tmp_path / "data" / "admin-token").read_text().strip()
        with Client(server.url, root) as admin:
            # 2,147,484 s is 2^31 ms and a little: the task's supervisor must not die of it.
            body = {"command": ["sh", "-c", "exit 3"], "time_limit_seconds": 2_147_484}
            job = admin.submit(JobSubmission.model_validate(body))
            deadline = time.monotonic() + 30
            while (found := admin.job(job.id)).state not in ("failed", "succeeded"):
                assert time.monotonic() < deadline, found
                time.sleep(0.1)
            assert (found.state, found.exit_code) == ("failed", 3)
    finally:
        server.stop()
