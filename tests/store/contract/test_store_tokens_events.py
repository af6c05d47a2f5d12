"""Users, memberships, API tokens, grants, the audit log and the event log in the store."""

from __future__ import annotations

import hashlib

import pytest

from allot.control.ports import ConflictError, NotFoundError, Store
from allot.control.principal import Role
from allot.control.records import AuditEntry, AuditFilter, TokenRecord, UserRecord
from allot.core.quota.config import ResourceQuota
from store_builders import new_job


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def test_a_stored_token_is_found_by_its_hash(store: Store) -> None:
    store.add_user("ci", cluster_admin=False, at=1.0)
    added = store.add_token("ci", "deploy", _hash("s3cret"), at=5.0, expires_at=50.0)
    assert added == TokenRecord(added.id, "ci", "deploy", 5.0, expires_at=50.0)
    assert store.find_token(_hash("s3cret")) == added
    assert store.find_token(_hash("other")) is None
    assert added.live_at(49.0)
    assert not added.live_at(50.0)


def test_a_hash_is_stored_once_and_a_token_needs_its_user(store: Store) -> None:
    store.add_user("ci", cluster_admin=False, at=1.0)
    store.add_token("ci", "deploy", _hash("s3cret"), at=5.0)
    with pytest.raises(ConflictError, match="token 'again': a token with this hash"):
        store.add_token("ci", "again", _hash("s3cret"), at=6.0)
    with pytest.raises(NotFoundError, match="user 'nobody' does not exist"):
        store.add_token("nobody", "x", _hash("other"), at=6.0)
    assert [t.name for t in store.tokens()] == ["deploy"]


def test_tokens_are_listed_revoked_and_touched(store: Store) -> None:
    store.add_user("ada", cluster_admin=False, at=1.0)
    store.add_user("bob", cluster_admin=False, at=1.0)
    a = store.add_token("ada", "laptop", _hash("a"), at=2.0)
    b = store.add_token("bob", "ci", _hash("b"), at=3.0)
    assert [t.id for t in store.tokens()] == [a.id, b.id]
    assert store.tokens("bob") == [b]
    store.touch_tokens({a.id: 10.0, 999: 11.0})
    store.touch_tokens({a.id: 8.0})  # earlier: no change
    assert store.tokens("ada")[0].last_used_at == 10.0
    revoked = store.revoke_token(a.id, at=12.0)
    assert revoked.revoked_at == 12.0
    assert store.revoke_token(a.id, at=13.0).revoked_at == 12.0  # once
    assert store.find_token(_hash("a")) is None
    assert store.tokens("ada")[0].revoked_at == 12.0
    with pytest.raises(NotFoundError, match="token 999 does not exist"):
        store.revoke_token(999, at=14.0)


def test_users_have_one_role_per_tenant(store: Store) -> None:
    store.add_user("root", cluster_admin=True, at=1.0)
    store.add_user("ada", cluster_admin=False, at=2.0)
    with pytest.raises(ConflictError, match="user 'ada' already exists"):
        store.add_user("ada", cluster_admin=True, at=3.0)
    store.set_membership("ada", "vision", Role.MEMBER)
    store.set_membership("ada", "nlp", Role.VIEWER)
    ada = store.set_membership("ada", "vision", Role.TENANT_ADMIN)
    assert ada == UserRecord("ada", 2.0, False, {"nlp": Role.VIEWER, "vision": Role.TENANT_ADMIN})
    assert store.set_membership("ada", "nlp", None).memberships == {"vision": Role.TENANT_ADMIN}
    assert [u.name for u in store.users()] == ["ada", "root"]
    assert store.get_user("root").cluster_admin
    assert store.get_user("ada").principal().may_submit_to("vision")
    with pytest.raises(NotFoundError, match="user 'eve' does not exist"):
        store.set_membership("eve", "vision", Role.MEMBER)
    with pytest.raises(ValueError, match="cluster_admin is not a role within a tenant"):
        store.set_membership("ada", "vision", Role.CLUSTER_ADMIN)


def test_grants_are_replaced_whole(store: Store) -> None:
    grant = {("H100-80G", "gpu"): ResourceQuota(8000, 2000), ("H100-80G", "cpu"): ResourceQuota(64)}
    store.set_grant("vision", grant)
    store.set_grant("nlp", {("A100-40G", "gpu"): ResourceQuota(4000)})
    assert store.grants() == {"nlp": {("A100-40G", "gpu"): ResourceQuota(4000)}, "vision": grant}
    store.set_grant("nlp", None)
    assert store.grants() == {"vision": grant}


def test_the_audit_log_is_read_newest_first_and_filtered(store: Store) -> None:
    def entry(at: float, actor: str, tenant: str, job: int | None) -> AuditEntry:
        return AuditEntry(at, actor, "cancel_job", f"job {job}", "ok", "cancelled", tenant, job)

    store.append_audit([entry(1.0, "ada", "vision", 1), entry(2.0, "bob", "nlp", 2)])
    store.append_audit([entry(3.0, "ada", "vision", 2), entry(4.0, "scheduler", "", None)])
    every = store.audit(AuditFilter())
    assert [e.time for e in every] == [4.0, 3.0, 2.0, 1.0]
    assert every[-1] == AuditEntry(1.0, "ada", "cancel_job", "job 1", "ok", "cancelled",
                                   "vision", 1, id=every[-1].id)  # fmt: skip
    assert [e.id for e in every] == sorted((e.id for e in every), reverse=True)
    assert [e.time for e in store.audit(AuditFilter(actor="ada"))] == [3.0, 1.0]
    assert [e.time for e in store.audit(AuditFilter(job_id=2))] == [3.0, 2.0]
    assert [e.time for e in store.audit(AuditFilter(since=2.5))] == [4.0, 3.0]
    assert [e.time for e in store.audit(AuditFilter(tenants=frozenset({"nlp"})))] == [2.0]
    assert store.audit(AuditFilter(tenants=frozenset())) == []
    assert store.audit(AuditFilter(limit=1, before=every[1].id)) == [every[2]]


def test_events_filter_by_job_and_page_by_id(store: Store) -> None:
    a = store.submit(new_job("a"), at=1.0, actor="ada")[0].id
    b = store.submit(new_job("b"), at=2.0, actor="bob")[0].id
    store.set_held(a, True, at=3.0, actor="ada")
    store.set_held(b, True, at=4.0, actor="bob")
    every = store.events()
    assert [(e.job_id, e.kind) for e in every] == [
        (a, "submitted"),
        (b, "submitted"),
        (a, "held"),
        (b, "held"),
    ]
    assert [e.kind for e in store.events(a)] == ["submitted", "held"]
    assert store.events(after=every[1].id) == every[2:]
    assert store.events(limit=1) == every[:1]
    assert store.events(b, after=every[1].id) == [every[3]]
    assert store.events(404) == []
    first = every[0]
    assert (first.time, first.actor, first.from_state, first.to_state, first.data) == (
        1.0,
        "ada",
        None,
        "pending",
        {"queue": "research"},
    )
