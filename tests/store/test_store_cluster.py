"""Nodes in the store: the executor's inventory merged with the admin's drains."""

from __future__ import annotations

import pytest

from allot.control.ports import NotFoundError
from allot.core.model import NodeState
from allot.store import SqlStore
from store_builders import node


def _states(store: SqlStore) -> dict[str, NodeState]:
    return {n.name: n.state for n in store.nodes()}


def test_sync_inserts_nodes_and_returns_them_by_name(store: SqlStore) -> None:
    reported = [node("b"), node("a", gpus=4, flavor="A100-40G")]
    assert store.sync_nodes(reported, at=1.0) == sorted(reported, key=lambda n: n.name)
    assert store.nodes() == sorted(reported, key=lambda n: n.name)


def test_sync_keeps_a_drain_and_marks_missing_nodes_down(store: SqlStore) -> None:
    store.sync_nodes([node("a"), node("b"), node("c")], at=1.0)
    store.set_node_state("a", NodeState.DRAINING, at=2.0, actor="admin")
    store.sync_nodes([node("a"), node("b")], at=3.0)
    assert _states(store) == {"a": NodeState.DRAINING, "b": NodeState.UP, "c": NodeState.DOWN}

    # Back in the inventory: up again; the drained node stays draining, even after a
    # spell away.
    store.sync_nodes([node("b"), node("c")], at=4.0)
    assert _states(store) == {"a": NodeState.DOWN, "b": NodeState.UP, "c": NodeState.UP}
    store.sync_nodes([node("a"), node("b"), node("c")], at=5.0)
    assert _states(store) == {"a": NodeState.DRAINING, "b": NodeState.UP, "c": NodeState.UP}

    store.set_node_state("a", NodeState.UP, at=6.0, actor="admin")
    store.sync_nodes([node("a"), node("b"), node("c")], at=7.0)
    assert _states(store) == {"a": NodeState.UP, "b": NodeState.UP, "c": NodeState.UP}


def test_a_drain_asked_while_missing_applies_on_return(store: SqlStore) -> None:
    store.sync_nodes([node("a")], at=1.0)
    store.sync_nodes([], at=2.0)
    drained = store.set_node_state("a", NodeState.DRAINING, at=3.0, actor="admin")
    assert drained.state is NodeState.DOWN
    store.sync_nodes([node("a")], at=4.0)
    assert _states(store) == {"a": NodeState.DRAINING}


def test_sync_updates_a_changed_shape(store: SqlStore) -> None:
    store.sync_nodes([node("a", gpus=8)], at=1.0)
    (updated,) = store.sync_nodes([node("a", gpus=4)], at=2.0)
    assert updated.gpus == 4
    assert store.nodes() == [node("a", gpus=4)]


def test_sync_refuses_an_inventory_naming_a_node_twice(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="node name 'a' appears twice"):
        store.sync_nodes([node("a"), node("a")], at=1.0)
    assert store.nodes() == []


def test_node_state_changes_are_events(store: SqlStore) -> None:
    store.sync_nodes([node("a")], at=1.0)
    store.set_node_state("a", NodeState.DRAINING, at=2.0, actor="admin")
    store.sync_nodes([node("a")], at=3.0)  # nothing changes, nothing is logged
    store.sync_nodes([], at=4.0)
    found = [e for e in store.events() if e.kind == "node_state"]
    log = [
        (e.data["node"], e.data["from_node_state"], e.data["node_state"], e.actor) for e in found
    ]
    assert log == [
        ("a", None, "up", "executor"),
        ("a", "up", "draining", "admin"),
        ("a", "draining", "down", "executor"),
    ]
    # Node states are not job states: the job-state columns stay empty.
    assert {(e.job_id, e.from_state, e.to_state) for e in found} == {(None, None, None)}
    assert [e.reason for e in found] == [
        "new node",
        "draining requested by admin",
        "missing from the inventory",
    ]


def test_set_node_state_names_a_missing_node(store: SqlStore) -> None:
    with pytest.raises(NotFoundError, match="node ghost does not exist"):
        store.set_node_state("ghost", NodeState.DRAINING, at=1.0, actor="admin")
