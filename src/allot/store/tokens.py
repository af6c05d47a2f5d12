"""API tokens, stored by their SHA-256 hash only (the secret itself never reaches the store).

Invariant: a hash names at most one token (a unique constraint); a revoked token is never
found again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select

from allot.control.records import TokenRecord
from allot.store import events
from allot.store.tables import TokenRow

TOKENS = TokenRow.__table__


def _record(row: Any) -> TokenRecord:
    return TokenRecord(row.id, row.name, row.role, row.created_at, row.revoked_at)


def add(conn: Connection, name: str, role: str, token_hash: str, *, at: float) -> TokenRecord:
    """Store a token; raises IntegrityError when the hash is already stored."""
    token_id: int = conn.execute(
        insert(TokenRow).returning(TokenRow.id),
        {"name": name, "role": role, "token_hash": token_hash, "created_at": at},
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
            reason=f"token {name!r} added with role {role}",
            data={"name": name, "role": role},
        ),
    )
    return TokenRecord(token_id, name, role, at)


def find(conn: Connection, token_hash: str) -> TokenRecord | None:
    """The live token with this hash, or None."""
    row = conn.execute(
        select(TOKENS).where(TokenRow.token_hash == token_hash, TokenRow.revoked_at.is_(None))
    ).one_or_none()
    return None if row is None else _record(row)
