"""API token secrets: how a new one is made and how it is stored.

A token is 32 random bytes from the operating system's CSPRNG (256 bits), written URL-safe
(43 characters, prefixed ``allot_`` so a leaked one is recognisable), shown once to whoever
created it, and stored only as its SHA-256. A lookup by hash reveals nothing about a token
through its timing, and the store never holds anything that would let a token be rebuilt.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "allot_"
TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh token secret."""
    return PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """How tokens are stored: the hex SHA-256 of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
