"""Nodes: the executor's inventory merged with the admin's drains.

Rules (each change appends a ``node_state`` event, the node's states in its ``data``):
- a reported node takes the reported shape and state, except that a drained node stays
  ``draining``;
- a node missing from the report goes ``down`` and keeps its drain, so it comes back
  ``draining`` if drained and ``up`` otherwise; each executor reports its own node pool, so
  only that pool's nodes can go missing from its report;
- draining or undraining a node that is missing records the wish; it stays ``down`` until
  reported.
A node that did not change is not written, so a periodic sync of a steady cluster only reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from allot.control.ports import NotFoundError
from allot.core.model import Node, NodeState
from allot.store import events
from allot.store.tables import NodeRow

NODES = NodeRow.__table__
_INSERT = insert(NodeRow)


def _node(row: Any) -> Node:
    return Node(
        row.name,
        row.flavor,
        row.gpus,
        row.cpu_milli,
        row.memory_mib,
        tuple(row.topology),
        NodeState(row.state),
        row.pool,
    )


_LISTED = select(NODES).order_by(NodeRow.name)  # built once: the loop reads it every cycle


def listed(conn: Connection) -> list[Node]:
    """Every node with its stored state, by name."""
    return [_node(row) for row in conn.execute(_LISTED)]


def _state_event(
    at: float, name: str, old: str | None, new: str, actor: str, reason: str
) -> dict[str, Any]:
    return events.event_values(
        at=at,
        kind="node_state",
        job_id=None,
        from_state=None,
        to_state=None,
        actor=actor,
        reason=reason,
        data={
            "node": name,
            "from_node_state": None if old is None else str(old),
            "node_state": str(new),
        },
    )


def sync(
    conn: Connection, nodes: Sequence[Node], *, at: float, pool: str | None = None
) -> list[Node]:
    """Merge an executor's inventory into the stored nodes; returns every node. With ``pool``,
    the inventory is that pool's alone: only its nodes go down when missing."""
    seen: set[str] = set()
    for node in nodes:
        if node.name in seen:
            raise ValueError(f"nodes: node name {node.name!r} appears twice in the inventory")
        seen.add(node.name)
    stored = {row.name: row for row in conn.execute(select(NODES).with_for_update())}
    inserts: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    for node in nodes:
        old = stored.get(node.name)
        state = NodeState.DRAINING if old is not None and old.drained else node.state
        values: dict[str, Any] = {
            "flavor": node.flavor,
            "gpus": node.gpus,
            "cpu_milli": node.cpu_milli,
            "memory_mib": node.memory_mib,
            "topology": list(node.topology),
            "state": state.value,
            "reported": True,
            "pool": node.pool,
        }
        if old is None:
            inserts.append({"name": node.name, "drained": False, "updated_at": at, **values})
            changes.append(_state_event(at, node.name, None, state, "executor", "new node"))
        elif any(getattr(old, key) != value for key, value in values.items()):
            conn.execute(
                update(NodeRow).where(NodeRow.name == node.name).values(updated_at=at, **values)
            )
            if old.state != state:
                changes.append(
                    _state_event(at, node.name, old.state, state, "executor", "reported again")
                )
    for name, old in stored.items():
        if name in seen or (old.state == NodeState.DOWN and not old.reported):
            continue
        if pool is not None and old.pool != pool:
            continue  # another executor's node
        conn.execute(
            update(NodeRow)
            .where(NodeRow.name == name)
            .values(state=NodeState.DOWN.value, reported=False, updated_at=at)
        )
        if old.state != NodeState.DOWN:
            changes.append(
                _state_event(
                    at, name, old.state, NodeState.DOWN, "executor", "missing from the inventory"
                )
            )
    if inserts:
        conn.execute(_INSERT, inserts)
    events.append(conn, *changes)
    return listed(conn)


def set_state(conn: Connection, name: str, state: NodeState, *, at: float, actor: str) -> Node:
    """Drain, undrain (up) or mark a node down; raises NotFoundError."""
    old = conn.execute(select(NODES).where(NodeRow.name == name).with_for_update()).one_or_none()
    if old is None:
        raise NotFoundError(f"node {name} does not exist")
    drained = old.drained
    if state is NodeState.DRAINING:
        drained = True
    elif state is NodeState.UP:
        drained = False
    # A missing node stays down whatever is asked; the drain is remembered for its return.
    new = state if old.reported or state is NodeState.DOWN else NodeState.DOWN
    if new != old.state or drained != old.drained:
        conn.execute(
            update(NodeRow)
            .where(NodeRow.name == name)
            .values(state=new.value, drained=drained, updated_at=at)
        )
        event = _state_event(at, name, old.state, new, actor, f"{state} requested by {actor}")
        event["data"]["requested"] = state.value
        events.append(conn, event)
    row = conn.execute(select(NODES).where(NodeRow.name == name)).one()
    return _node(row)
