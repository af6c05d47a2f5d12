"""Routes of the cluster: ``/v1/nodes`` (list, drain, undrain) and ``/v1/queues``.

Thin like every route: parse, call the ``ControlPlane`` as the authenticated caller, map.
"""

from __future__ import annotations

from fastapi import APIRouter

from allot.api import wire
from allot.api.auth import Caller
from allot.api.context import Control
from allot.api.problems import documented
from allot.api.routes.profile import Profiler, check_out
from allot.core.model import NodeState
from allot.wire.schemas import NodeOut, QueueOut

router = APIRouter(tags=["cluster"])


@router.get("/nodes")
def list_nodes(control: Control, profiler: Profiler) -> list[NodeOut]:
    """Every node with its state and its latest node check."""
    source = control.inventory_source()
    sharing = control.gpu_sharing()
    checks = profiler.node_checks()
    return [
        wire.node_out(n, source, check_out(checks[n.name]) if n.name in checks else None, sharing)
        for n in control.nodes()
    ]


@router.post("/nodes/{name}/drain", responses=documented(404))
def drain_node(name: str, control: Control, caller: Caller) -> NodeOut:
    """Place nothing new on the node; what runs there keeps running."""
    node = control.set_node_state(name, NodeState.DRAINING, principal=caller)
    return wire.node_out(node, control.inventory_source())


@router.post("/nodes/{name}/undrain", responses=documented(404))
def undrain_node(name: str, control: Control, caller: Caller) -> NodeOut:
    """Let the node take new work again."""
    node = control.set_node_state(name, NodeState.UP, principal=caller)
    return wire.node_out(node, control.inventory_source())


@router.get("/queues")
def list_queues(control: Control) -> list[QueueOut]:
    """Each queue with its nominal GPU quota, what it uses now, and its job counts."""
    return [wire.queue_out(v) for v in control.queues()]
