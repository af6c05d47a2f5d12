"""Routes of the cluster: ``/v1/nodes`` (list, drain, undrain) and ``/v1/queues``. Every
caller reads them (like ``sinfo``, the cluster is shared knowledge); only cluster admins drain.

Thin like every route: parse, call the ``ControlPlane`` as the authenticated caller, map.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from allot.api import wire
from allot.api.audit import note
from allot.api.auth import Caller
from allot.api.context import Control
from allot.api.problems import documented
from allot.api.routes.profile import Profiler, check_out
from allot.core.model import NodeState
from allot.wire.schemas import NodeOut, QueueOut

router = APIRouter(tags=["cluster"])

NodeName = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("/nodes")
def list_nodes(control: Control, profiler: Profiler, caller: Caller) -> list[NodeOut]:
    """Every node with its state and its latest node check."""
    source = control.inventory_source()
    sharing = control.gpu_sharing()
    checks = profiler.node_checks()
    return [
        wire.node_out(n, source, check_out(checks[n.name]) if n.name in checks else None, sharing)
        for n in control.nodes()
    ]


@router.post("/nodes/{name}/drain", responses=documented(403, 404))
def drain_node(name: NodeName, control: Control, caller: Caller, request: Request) -> NodeOut:
    """Place nothing new on the node; what runs there keeps running (cluster admins only)."""
    node = control.set_node_state(name, NodeState.DRAINING, principal=caller)
    note(request, f"node {name}", reason="drained")
    return wire.node_out(node, control.inventory_source())


@router.post("/nodes/{name}/undrain", responses=documented(403, 404))
def undrain_node(name: NodeName, control: Control, caller: Caller, request: Request) -> NodeOut:
    """Let the node take new work again (cluster admins only)."""
    node = control.set_node_state(name, NodeState.UP, principal=caller)
    note(request, f"node {name}", reason="undrained")
    return wire.node_out(node, control.inventory_source())


@router.get("/queues")
def list_queues(control: Control, caller: Caller) -> list[QueueOut]:
    """Each queue with its nominal GPU quota, what it uses now, and its job counts."""
    return [wire.queue_out(v) for v in control.queues()]
