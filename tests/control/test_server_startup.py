"""``allot up``'s start-up (``allot.server.build``): data directory, admin token, quotas."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from allot.api.auth import hash_token
from allot.config.errors import ConfigError
from allot.server import ServerConfig, build


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
        assert record.role == "admin"
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
