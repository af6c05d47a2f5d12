"""Revision 0007 on a database that already holds admin tokens: each token's name becomes a
user, a cluster admin, and the token is bound to it and keeps working; the audit log
(0008) starts empty; and both undo back to revision 0006."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import text

from allot.control.records import AuditFilter
from allot.store import SqlStore
from allot.store.migrations import alembic_config


@pytest.fixture
def store_at_0006(database_url: str) -> Iterator[SqlStore]:
    """A store whose database is at revision 0006."""
    opened = SqlStore(database_url)
    with opened.engine.begin() as conn:
        command.upgrade(alembic_config(opened.engine.url, conn), "0006")
    try:
        yield opened
    finally:
        opened.close()


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def test_revision_0007_makes_each_token_a_cluster_admins(store_at_0006: SqlStore) -> None:
    store = store_at_0006
    with store.engine.begin() as conn:
        for name, secret, at in (("admin", "a", 5.0), ("ci", "b", 7.0), ("ci", "c", 6.0)):
            conn.execute(
                text(
                    "INSERT INTO api_tokens (name, role, token_hash, created_at)"
                    " VALUES (:name, 'admin', :hash, :at)"
                ),
                {"name": name, "hash": _hash(secret), "at": at},
            )
    store.migrate()
    assert [(u.name, u.cluster_admin, u.created_at) for u in store.users()] == [
        ("admin", True, 5.0),
        ("ci", True, 6.0),
    ]
    found = store.find_token(_hash("b"))
    assert found is not None
    assert (found.user, found.name, found.expires_at) == ("ci", "ci", None)
    assert store.audit(AuditFilter()) == []
    with store.engine.begin() as conn:
        command.downgrade(alembic_config(store.engine.url, conn), "0006")
        roles = conn.execute(text("SELECT name, role FROM api_tokens ORDER BY id")).all()
    assert [tuple(r) for r in roles] == [("admin", "admin"), ("ci", "admin"), ("ci", "admin")]
