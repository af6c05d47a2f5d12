"""API tokens, stored by their SHA-256 hash only (the secret itself never reaches the store),
each bound to a user, with its expiry, last use and revocation.

Invariant: a hash names at most one token (a unique constraint); a revoked token is never
found again; ``last_used_at`` only moves forward.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, insert, select, update

from allot.control.ports import NotFoundError
from allot.control.records import TokenRecord
from allot.store import events
from allot.store.tables import TokenRow, UserRow

TOKENS = TokenRow.__table__
_COLUMNS = (
    TokenRow.id,
    TokenRow.user,
    TokenRow.name,
    TokenRow.created_at,
    TokenRow.expires_at,
    TokenRow.last_used_at,
    TokenRow.revoked_at,
)


def _record(row: Any) -> TokenRecord:
    return TokenRecord(
        row.id,
        row.user,
        row.name,
        row.created_at,
        row.expires_at,
        row.last_used_at,
        row.revoked_at,
    )


def add(
    conn: Connection,
    user: str,
    name: str,
    token_hash: str,
    *,
    at: float,
    expires_at: float | None,
) -> TokenRecord:
    """Store a token of ``user``; raises NotFoundError for an unknown user and IntegrityError
    when the hash is already stored."""
    if conn.execute(select(UserRow.name).where(UserRow.name == user)).first() is None:
        raise NotFoundError(f"user {user!r} does not exist")
    token_id: int = conn.execute(
        insert(TokenRow).returning(TokenRow.id),
        {
            "user": user,
            "name": name,
            "token_hash": token_hash,
            "created_at": at,
            "expires_at": expires_at,
        },
    ).scalar_one()
    events.append(
        conn,
        events.event_values(
            at=at,
            kind="token_added",
            job_id=None,
            from_state=None,
            to_state=None,
            actor="config",
            reason=f"token {name!r} of user {user!r} added",
            data={"name": name, "user": user, "token_id": token_id},
        ),
    )
    return TokenRecord(token_id, user, name, at, expires_at)


def find(conn: Connection, token_hash: str) -> TokenRecord | None:
    """The token with this hash that is not revoked, or None (expired ones are returned: the
    caller decides with its clock)."""
    row = conn.execute(
        select(*_COLUMNS).where(TokenRow.token_hash == token_hash, TokenRow.revoked_at.is_(None))
    ).one_or_none()
    return None if row is None else _record(row)


def listed(conn: Connection, user: str | None) -> list[TokenRecord]:
    """Every token (of ``user``, when given), oldest first."""
    query = select(*_COLUMNS).order_by(TokenRow.id)
    if user is not None:
        query = query.where(TokenRow.user == user)
    return [_record(row) for row in conn.execute(query)]


def revoke(conn: Connection, token_id: int, *, at: float) -> TokenRecord:
    """Revoke a token (a no-op when it already is); raises NotFoundError."""
    conn.execute(
        update(TokenRow)
        .where(TokenRow.id == token_id, TokenRow.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    row = conn.execute(select(*_COLUMNS).where(TokenRow.id == token_id)).one_or_none()
    if row is None:
        raise NotFoundError(f"token {token_id} does not exist")
    return _record(row)


def touch(conn: Connection, uses: Mapping[int, float]) -> None:
    """Record when each token was last used (only ever later than what is stored)."""
    for token_id, at in uses.items():
        conn.execute(
            update(TokenRow)
            .where(
                TokenRow.id == token_id,
                (TokenRow.last_used_at.is_(None)) | (TokenRow.last_used_at < at),
            )
            .values(last_used_at=at)
        )
