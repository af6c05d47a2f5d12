"""Small builders for store tests: a valid submission, a run for a job, a node."""

from __future__ import annotations

from allot.control.records import Launch, NewJob, RunPhase, RunRecord
from allot.core.model import Node, Resources, TaskPlacement


def new_job(
    name: str = "train",
    *,
    tenant: str = "vision",
    user: str = "ada",
    queue: str = "research",
    gpus: int = 1,
    tasks: int = 1,
    held: bool = False,
    **fields: object,
) -> NewJob:
    """A pending-job submission asking for ``tasks`` x ``gpus`` whole GPUs."""
    shape = Resources(gpus * 1000, 4000, 16384)
    return NewJob(
        name=name,
        tenant=tenant,
        user=user,
        queue=queue,
        tasks=(shape,) * tasks,
        launch=Launch(("python", "train.py", "--epochs", "3"), "/work", {"SEED": "7"}),
        held=held,
        **fields,  # type: ignore[arg-type]
    )


def run_for(
    job_id: int,
    run_id: str = "run-1",
    *,
    at: float = 100.0,
    nodes: tuple[str, ...] = ("node-1",),
    gpus: int = 1,
    flavor: str = "H100-80G",
) -> RunRecord:
    """A starting run placing one task on each of ``nodes`` with ``gpus`` devices each."""
    placement = tuple(
        TaskPlacement(node, tuple(range(gpus)), 1000 if gpus else 0) for node in nodes
    )
    return RunRecord(run_id, job_id, RunPhase.STARTING, flavor, placement, at)


def node(name: str, *, gpus: int = 8, flavor: str = "H100-80G") -> Node:
    """An up node with ``gpus`` GPUs, 64 cores and 512 GiB."""
    return Node(name, flavor, gpus, 64_000, 524_288, ("zone-a", "rack-1", name))
