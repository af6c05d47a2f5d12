"""``allot up``'s start-up (``allot.server``): data directory, admin token, which quotas are
in force across restarts and what the banner says about them, and the claims on the address
and the data directory (in one process here; tests/integration/test_server_start.py runs
real servers)."""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from allot.api.auth import hash_token
from allot.banner import queues_line, quotas_line, try_command
from allot.config.errors import ConfigError
from allot.core.model import Node
from allot.core.quota.config import QueueSpec, QuotaConfig, ResourceQuota
from allot.instance import LOCK_FILE, ClaimError, data_dir_holder
from allot.quota_source import SOURCE_FILE, ActiveQuotas
from allot.server import Server, ServerConfig, build, claim

QUOTAS = (
    "tenants:\n  - name: vision\nqueues:\n  - name: train\n    tenant: vision\n"
    "    quotas:\n      gpu:\n        gpu: 2\n  - name: eval\n    tenant: vision\n"
)


def config(tmp_path: Path, **changes: object) -> ServerConfig:
    return ServerConfig(data_dir=tmp_path / "data", gpus=2, **changes)  # type: ignore[arg-type]


def test_first_start_creates_a_private_admin_token_and_a_default_queue(tmp_path: Path) -> None:
    server = build(config(tmp_path))
    try:
        token_file = tmp_path / "data" / "admin-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
        token = token_file.read_text().strip()
        assert len(token) >= 32
        record = server.store.find_token(hash_token(token))
        assert record is not None
        assert (record.user, record.expires_at) == ("admin", None)  # the operator's, for good
        assert server.store.get_user("admin").cluster_admin
        for name in ("allot.db", "allot.db-wal", "allot.db-shm"):
            database = tmp_path / "data" / name
            assert stat.S_IMODE(database.stat().st_mode) == 0o600, name
        assert [q.name for q in server.store.quotas().queues] == ["default"]
        assert [(n.gpus, n.flavor) for n in server.store.nodes()] == [(2, "gpu")]
        assert "declared 2 GPUs" in server.inventory.detail
    finally:
        server.loop.close()
        server.store.close()
    again = build(config(tmp_path))
    try:
        assert (tmp_path / "data" / "admin-token").read_text().strip() == token
        assert again.store.find_token(hash_token(token)) is not None
    finally:
        again.loop.close()
        again.store.close()


def test_a_quota_file_is_checked_against_the_cluster(tmp_path: Path) -> None:
    quotas = tmp_path / "quotas.yaml"
    quotas.write_text(
        "tenants:\n  - name: a\nqueues:\n  - name: q\n    tenant: a\n"
        "    quotas:\n      H100:\n        gpu: 1\n"
    )
    with pytest.raises(ConfigError, match="unknown flavor 'H100'; the cluster has: gpu"):
        build(config(tmp_path, quotas_file=quotas)).loop.close()
    quotas.write_text(quotas.read_text().replace("H100", "gpu"))
    server = build(config(tmp_path, quotas_file=quotas))
    try:
        assert [q.name for q in server.store.quotas().queues] == ["q"]
    finally:
        server.loop.close()
        server.store.close()


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Server]]:
    """Servers built by a test, closed at its end."""
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.loop.close()
        server.store.close()


def start(servers: list[Server], tmp_path: Path, **changes: object) -> Server:
    server = build(config(tmp_path, **changes))
    servers.append(server)
    return server


def stop(servers: list[Server]) -> None:
    server = servers.pop()
    server.loop.close()
    server.store.close()


def test_stored_quotas_stay_in_force_until_a_file_or_the_default_replaces_them(
    tmp_path: Path, started: list[Server]
) -> None:
    quotas = tmp_path / "quotas.yaml"
    quotas.write_text(QUOTAS)
    first = start(started, tmp_path, quotas_file=quotas).quotas
    assert [q.name for q in first.config.queues] == ["train", "eval"]
    assert (first.file, first.kept) == (quotas.resolve(), False)
    stop(started)
    quotas.write_text("not: read again\n")  # the store keeps the quotas, not the file
    again = start(started, tmp_path).quotas
    assert [q.name for q in again.config.queues] == ["train", "eval"]
    assert (again.file, again.loaded_at, again.kept) == (quotas.resolve(), first.loaded_at, True)
    assert "kept from the store (loaded at " in quotas_line(again)
    assert str(quotas.resolve()) in quotas_line(again)
    assert "back to the default: allot up --quotas default" in quotas_line(again)
    stop(started)
    reset = start(started, tmp_path, default_quotas=True).quotas
    assert [q.name for q in reset.config.queues] == ["default"]
    assert reset.is_default
    assert not reset.kept
    stop(started)
    kept = start(started, tmp_path).quotas
    assert [q.name for q in kept.config.queues] == ["default"]
    assert kept.is_default
    assert kept.kept
    assert "back to the default" not in quotas_line(kept)


def test_quotas_changed_behind_the_note_are_of_unknown_source(
    tmp_path: Path, started: list[Server]
) -> None:
    quotas = tmp_path / "quotas.yaml"
    quotas.write_text(QUOTAS)
    server = start(started, tmp_path, quotas_file=quotas)
    config_now = server.store.quotas()
    # As another server sharing the database would:
    server.store.save_quotas(QuotaConfig(config_now.tenants, config_now.queues[:1]), at=0)
    stop(started)
    active = start(started, tmp_path).quotas
    assert [q.name for q in active.config.queues] == ["train"]
    assert not active.known
    assert "source was not recorded" in quotas_line(active)


def test_a_bad_quota_file_is_refused_before_the_store_is_opened(tmp_path: Path) -> None:
    quotas = tmp_path / "quotas.yaml"
    quotas.write_text("tenants: []\n")
    with pytest.raises(ConfigError):
        build(config(tmp_path, quotas_file=quotas))
    assert not (tmp_path / "data" / "allot.db").exists()
    assert not (tmp_path / "data" / SOURCE_FILE).exists()


def test_the_banner_lists_the_queues_and_a_try_command_that_fits_them() -> None:
    gpu_box = [Node("box", "gpu", 4, 2_000, 8_192)]
    cpu_box = [Node("box", "cpu", 0, 2_000, 512)]
    default = QueueSpec("default", "default")
    train = QueueSpec("train", "vision", quotas={("gpu", "gpu"): ResourceQuota(2000)})
    no_gpu = QueueSpec("empty", "vision", quotas={("gpu", "gpu"): ResourceQuota(0, 0)})
    other = QueueSpec("other", "vision", quotas={("H100", "gpu"): ResourceQuota(8000)})
    assert "--queue" not in try_command([default, train], gpu_box)
    assert "--gpus 1 --queue train --" in try_command([train], gpu_box)
    assert "--queue train" in try_command([no_gpu, other, train], gpu_box)
    assert try_command([default], cpu_box) == (
        "allot submit --cpus 1 --memory-mib 512 -- echo hello; allot jobs --all"
    )
    assert queues_line([train, default]) == (
        "train (tenant vision, gpu 2 GPUs); default (tenant default, unconstrained)"
    )
    many = [QueueSpec(f"q{i}", "t") for i in range(9)]
    assert queues_line(many).endswith("and 3 more (allot queues)")


def test_the_default_quotas_read_as_such_in_the_banner() -> None:
    from allot.quota_source import default_quotas

    fresh = ActiveQuotas(default_quotas(), None, 0.0, kept=False)
    assert quotas_line(fresh).startswith("the built-in default")
    assert "set now" in quotas_line(fresh)


def test_a_taken_port_or_a_locked_data_directory_is_refused_holding_nothing(
    tmp_path: Path,
) -> None:
    first = claim(config(tmp_path, port=0))
    try:
        port = first.sock.getsockname()[1]
        first.sock.listen()
        record = json.loads((tmp_path / "data" / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid()
        holder = data_dir_holder(tmp_path / "data")
        assert holder is not None
        assert holder.pid == os.getpid()
        with pytest.raises(ClaimError, match=rf"--port: 127.0.0.1:{port} is already in use"):
            claim(config(tmp_path, port=port))
        with pytest.raises(ClaimError, match=f"already running .* \\(pid {os.getpid()}"):
            claim(config(tmp_path, port=0))
        assert not (tmp_path / "data" / "allot.db").exists()
    finally:
        first.release()
    assert data_dir_holder(tmp_path / "data") is None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the refused claims left the port free
    claim(config(tmp_path, port=0)).release()
