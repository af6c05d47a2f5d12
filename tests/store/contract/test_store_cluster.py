"""Nodes in the store: each executor's inventory (of its own node pool) merged with the admin's
drains."""

from __future__ import annotations

from dataclasses import replace

import pytest

from allot.control.ports import NotFoundError, Store
from allot.core.model import NodeState
from store_builders import node


def _states(store: Store) -> dict[str, NodeState]:
    return {n.name: n.state for n in store.nodes()}


def test_sync_inserts_nodes_and_returns_them_by_name(store: Store) -> None:
    reported = [node("b"), node("a", gpus=4, flavor="A100-40G")]
    assert store.sync_nodes(reported, at=1.0) == sorted(reported, key=lambda n: n.name)
    assert store.nodes() == sorted(reported, key=lambda n: n.name)


def test_sync_keeps_a_drain_and_marks_missing_nodes_down(store: Store) -> None:
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


def test_a_drain_asked_while_missing_applies_on_return(store: Store) -> None:
    store.sync_nodes([node("a")], at=1.0)
    store.sync_nodes([], at=2.0)
    drained = store.set_node_state("a", NodeState.DRAINING, at=3.0, actor="admin")
    assert drained.state is NodeState.DOWN
    store.sync_nodes([node("a")], at=4.0)
    assert _states(store) == {"a": NodeState.DRAINING}


def test_sync_of_one_pool_leaves_other_pools_alone(store: Store) -> None:
    local, slurm = replace(node("a"), pool="local"), replace(node("s1"), pool="slurm")
    store.sync_nodes([local], at=1.0, pool="local")
    store.sync_nodes([slurm, replace(node("s2"), pool="slurm")], at=1.0, pool="slurm")
    # Each executor reports its own pool: only that pool's nodes can go missing from it.
    store.sync_nodes([slurm], at=2.0, pool="slurm")
    assert _states(store) == {"a": NodeState.UP, "s1": NodeState.UP, "s2": NodeState.DOWN}
    store.sync_nodes([], at=3.0, pool="local")
    assert _states(store) == {"a": NodeState.DOWN, "s1": NodeState.UP, "s2": NodeState.DOWN}
    assert [n.pool for n in store.nodes()] == ["local", "slurm", "slurm"]
    # Without a pool, the inventory is the whole cluster's.
    store.sync_nodes([local], at=4.0)
    assert _states(store) == {"a": NodeState.UP, "s1": NodeState.DOWN, "s2": NodeState.DOWN}


def test_sync_updates_a_changed_shape(store: Store) -> None:
    store.sync_nodes([node("a", gpus=8)], at=1.0)
    (updated,) = store.sync_nodes([node("a", gpus=4)], at=2.0)
    assert updated.gpus == 4
    assert store.nodes() == [node("a", gpus=4)]


def test_sync_refuses_an_inventory_naming_a_node_twice(store: Store) -> None:
    with pytest.raises(ValueError, match="node name 'a' appears twice"):
        store.sync_nodes([node("a"), node("a")], at=1.0)
    assert store.nodes() == []


def test_node_state_changes_are_events(store: Store) -> None:
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


def test_set_node_state_names_a_missing_node(store: Store) -> None:
    with pytest.raises(NotFoundError, match="node ghost does not exist"):
        store.set_node_state("ghost", NodeState.DRAINING, at=1.0, actor="admin")
