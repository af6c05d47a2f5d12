"""API tokens and the event log in the store."""

from __future__ import annotations

import hashlib

import pytest

from allot.control.ports import ConflictError, Store
from allot.control.records import TokenRecord
from store_builders import new_job


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def test_a_stored_token_is_found_by_its_hash(store: Store) -> None:
    added = store.add_token("ci", "admin", _hash("s3cret"), at=5.0)
    assert added == TokenRecord(added.id, "ci", "admin", 5.0)
    assert store.find_token(_hash("s3cret")) == added
    assert store.find_token(_hash("other")) is None


def test_a_hash_is_stored_once(store: Store) -> None:
    store.add_token("ci", "admin", _hash("s3cret"), at=5.0)
    with pytest.raises(ConflictError, match="token 'again': a token with this hash"):
        store.add_token("again", "admin", _hash("s3cret"), at=6.0)


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
