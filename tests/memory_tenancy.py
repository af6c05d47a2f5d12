"""The users, tokens, grants and audit-log part of ``MemoryStore``, answering as ``SqlStore``
does (the store contract tests hold both to it): same records, errors and messages, orderings,
and the ``token_added`` event. It works on ``MemoryStore``'s tables, under its lock."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import TYPE_CHECKING

from allot.control.ports import ConflictError, NotFoundError
from allot.control.principal import Role
from allot.control.records import AuditEntry, AuditFilter, TokenRecord, UserRecord
from allot.core.quota.config import FlavorResource, Quotas, ResourceQuota

if TYPE_CHECKING:
    from memory_store import _Tables


class MemoryTenancy:
    """Mixed into ``MemoryStore``: the Store methods of users, tokens, grants and audit."""

    if TYPE_CHECKING:

        def _transaction(self) -> AbstractContextManager[_Tables]: ...
        def _reading(self) -> AbstractContextManager[_Tables]: ...

    def add_user(self, name: str, *, cluster_admin: bool, at: float) -> UserRecord:
        with self._transaction() as db:
            if name in db.users:
                raise ConflictError(f"user {name!r} already exists")
            record = db.users[name] = UserRecord(name, at, cluster_admin)
            return record

    def get_user(self, name: str) -> UserRecord:
        with self._reading() as db:
            return _user(db.users, name)

    def users(self) -> list[UserRecord]:
        with self._reading() as db:
            return [db.users[name] for name in sorted(db.users)]

    def set_membership(self, user: str, tenant: str, role: Role | None) -> UserRecord:
        if role is Role.CLUSTER_ADMIN:
            raise ValueError("role: cluster_admin is not a role within a tenant")
        with self._transaction() as db:
            record = _user(db.users, user)
            roles = {t: r for t, r in record.memberships.items() if t != tenant}
            if role is not None:
                roles[tenant] = role
            record = db.users[user] = replace(record, memberships=dict(sorted(roles.items())))
            return record

    def add_token(
        self, user: str, name: str, token_hash: str, *, at: float, expires_at: float | None = None
    ) -> TokenRecord:
        with self._transaction() as db:
            _user(db.users, user)
            if token_hash in db.tokens:
                raise ConflictError(f"token {name!r}: a token with this hash already exists")
            record = TokenRecord(len(db.tokens) + 1, user, name, at, expires_at)
            db.tokens[token_hash] = record
            db.event(at, "token_added", None, (None, None), "config",
                     f"token {name!r} of user {user!r} added",
                     name=name, user=user, token_id=record.id)  # fmt: skip
            return record

    def find_token(self, token_hash: str) -> TokenRecord | None:
        with self._reading() as db:
            record = db.tokens.get(token_hash)
            return record if record is not None and record.revoked_at is None else None

    def tokens(self, user: str | None = None) -> list[TokenRecord]:
        with self._reading() as db:
            found = [t for t in db.tokens.values() if user in (None, t.user)]
            return sorted(found, key=lambda t: t.id)

    def revoke_token(self, token_id: int, *, at: float) -> TokenRecord:
        with self._transaction() as db:
            for digest, record in db.tokens.items():
                if record.id == token_id:
                    if record.revoked_at is None:
                        record = db.tokens[digest] = replace(record, revoked_at=at)
                    return record
            raise NotFoundError(f"token {token_id} does not exist")

    def touch_tokens(self, uses: Mapping[int, float]) -> None:
        with self._transaction() as db:
            for digest, record in db.tokens.items():
                at = uses.get(record.id)
                if at is not None and (record.last_used_at is None or record.last_used_at < at):
                    db.tokens[digest] = replace(record, last_used_at=at)

    def set_grant(self, tenant: str, quotas: Quotas | None) -> None:
        with self._transaction() as db:
            db.grants.pop(tenant, None)
            if quotas is not None:
                db.grants[tenant] = dict(quotas)

    def grants(self) -> dict[str, dict[FlavorResource, ResourceQuota]]:
        with self._reading() as db:
            return {tenant: dict(db.grants[tenant]) for tenant in sorted(db.grants)}

    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        with self._transaction() as db:
            for entry in entries:
                db.audit.append(replace(entry, id=len(db.audit) + 1))

    def audit(self, where: AuditFilter) -> list[AuditEntry]:
        with self._reading() as db:
            return list(_newest_first(db.audit, where))[: max(0, where.limit)]


def _user(users: Mapping[str, UserRecord], name: str) -> UserRecord:
    record = users.get(name)
    if record is None:
        raise NotFoundError(f"user {name!r} does not exist")
    return record


def _newest_first(entries: Sequence[AuditEntry], where: AuditFilter) -> Iterator[AuditEntry]:
    for e in reversed(entries):
        if (
            (where.before is None or e.id < where.before)
            and (where.since is None or e.time >= where.since)
            and where.actor in (None, e.actor)
            and (where.job_id is None or e.job_id == where.job_id)
            and (where.tenants is None or e.tenant in where.tenants)
        ):
            yield e
