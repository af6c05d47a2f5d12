"""Diagnose: why a job cannot be placed, as an ``Explanation``.

``screen`` answers the static questions that do not depend on what is free (no accepted flavor
exists; even an empty cluster could not hold the job; only drained or down nodes could). Its
answers are memoised on the snapshot per job shape until a node changes state. A job that never
fits names what runs short on each accepted flavor (``limit_resource``: the first resource of
``gpu``, ``cpu``, ``memory`` the largest node lacks, else ``tasks`` or ``shape``).
``explain_no_fit`` describes the shortfall against what is free now: the most free GPUs on one
node, how many of a gang's tasks fit, or which of CPU and memory is short (one, or both, with
the amounts needed and free). A CPU-only job accepts any node, so its sentences speak of nodes,
never of GPU flavors: it is described over all the nodes of its accepted flavors together.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from allot.core.explain import Explanation, FieldValue, Reason, memory
from allot.core.model import MILLI_PER_GPU, Cluster, JobSpec, NodeState, Resources
from allot.core.placement.feasibility import FlavorCapacity, node_capacity_tasks
from allot.core.placement.select import choose_placement
from allot.core.placement.throughput import rank_flavors
from allot.core.snapshot import Snapshot
from allot.core.units import number, quantity


def accepted_flavors(snap: Snapshot, spec: JobSpec) -> tuple[str, ...]:
    """The flavors ``spec`` accepts that the cluster has, in the job's order of preference
    (the cluster's order when the job accepts any; by speed with throughput-aware placement,
    ``allot.core.placement.throughput``)."""
    if not spec.flavors:
        flavors = snap.flavors
    else:
        flavors = tuple(f for f in spec.flavors if f in snap.buckets)
    if snap.speed_norms is None:
        return flavors
    return rank_flavors(spec, flavors, snap.speed_norms, snap.free_gpu_milli, snap.speed_reserve)


def _flavor_capacity(snap: Snapshot, flavor: str) -> FlavorCapacity:
    key = ("flavor-capacity", flavor)
    cached = snap.memo.get(key)
    if isinstance(cached, FlavorCapacity):
        return cached
    indices = [i for i, f in enumerate(snap.flavor_of) if f == flavor]
    capacity = FlavorCapacity.of((snap.nodes[i] for i in indices), (snap.state[i] for i in indices))
    snap.memo[key] = capacity
    return capacity


def _empty(snap: Snapshot, *, schedulable_only: bool) -> Snapshot:
    """The same nodes with nothing running: with their current states, or all up."""
    key = ("empty", schedulable_only)
    cached = snap.memo.get(key)
    if isinstance(cached, Snapshot):
        return cached
    states = snap.state if schedulable_only else [NodeState.UP] * len(snap.nodes)
    nodes = tuple(replace(n, state=s) for n, s in zip(snap.nodes, states, strict=True))
    empty = Snapshot(Cluster(nodes, snap.cluster.name))
    snap.memo[key] = empty
    return empty


def needs_fields(spec: JobSpec, flavors: tuple[str, ...]) -> dict[str, FieldValue]:
    """The fields every placement explanation carries: what one task asks for and how many."""
    largest = max(spec.tasks, key=lambda t: (t.gpu_milli, t.cpu_milli, t.memory_mib))
    return {
        "tasks": len(spec.tasks),
        "gpu_milli_per_task": largest.gpu_milli,
        "cpu_milli_per_task": largest.cpu_milli,
        "memory_mib_per_task": largest.memory_mib,
        "flavors": " or ".join(flavors or spec.flavors) or "any flavor",
    }


def _limit(
    capacity: FlavorCapacity, flavor: str, spec: JobSpec, task: Resources, *, named: bool
) -> tuple[str, str]:
    """What runs short on ``flavor`` for a job that never fits there, as (resource, sentence);
    ``named`` puts the flavor into the sentence (when several flavors are described)."""
    largest = f"the largest {flavor} node" if named else "the largest"
    if task.gpu_milli > capacity.largest_node_gpus * MILLI_PER_GPU:
        return "gpu", f"{largest} has {quantity(capacity.largest_node_gpus, 'GPU')}"
    if task.cpu_milli > capacity.largest_node_cpu_milli:
        return "cpu", f"{largest} has {quantity(capacity.largest_node_cpu_milli / 1000, 'CPU')}"
    if task.memory_mib > capacity.largest_node_memory_mib:
        return "memory", f"{largest} has {memory(capacity.largest_node_memory_mib)}"
    nodes = f"no {flavor} node" if named else "no node"
    if len(spec.tasks) == 1:
        return "shape", f"{nodes} has all of that at once"
    if named:
        every = f"all {flavor} nodes together"
    else:  # "them": the nodes the sentence names first, unless a CPU-only job named none
        every = "all nodes together" if task.gpu_milli == 0 else "all of them together"
    if len(set(spec.tasks)) > 1:
        return "tasks", f"{every} cannot hold every task at once"
    room = sum(n * node_capacity_tasks(g, c, m, task) for (g, c, m), n in capacity.all_nodes)
    held = "none of them" if room == 0 else f"only {room}"
    return "tasks", f"{every} hold {held}"


def screen(snap: Snapshot, spec: JobSpec) -> Explanation | None:
    """An explanation when ``spec`` cannot run whatever becomes free; None otherwise."""
    if spec.shape in snap.screened:
        return snap.screened[spec.shape]  # type: ignore[return-value]
    result = _screen(snap, spec)
    snap.screened[spec.shape] = result
    return result


def _screen(snap: Snapshot, spec: JobSpec) -> Explanation | None:
    flavors = accepted_flavors(snap, spec)
    if not flavors:
        return Explanation(Reason.NO_FLAVOR, {"flavors": ", ".join(spec.flavors)})
    shapes = list(Counter(spec.tasks).items())
    unavailable = False
    for flavor in flavors:
        if len(shapes) == 1:
            capacity = _flavor_capacity(snap, flavor)
            if capacity.holds(shapes, schedulable_only=True):
                return None
            unavailable = unavailable or capacity.holds(shapes, schedulable_only=False)
        else:
            # Mixed shapes: counting per shape is not enough; place on an empty copy.
            if choose_placement(_empty(snap, schedulable_only=True), spec, flavor) is not None:
                return None
            empty = _empty(snap, schedulable_only=False)
            unavailable = unavailable or choose_placement(empty, spec, flavor) is not None
    fields = needs_fields(spec, flavors)
    if unavailable:
        return Explanation(Reason.NODES_UNAVAILABLE, fields)
    largest = max(spec.tasks, key=lambda t: (t.gpu_milli, t.cpu_milli, t.memory_mib))
    named = len(flavors) > 1
    limits = [_limit(_flavor_capacity(snap, f), f, spec, largest, named=named) for f in flavors]
    if largest.gpu_milli == 0 and named:
        limits = _cpu_only_limits(snap, flavors, spec, largest, limits)
    if len(set(spec.tasks)) > 1:
        fields["mixed_tasks"] = 1
    fields["limit_resource"] = ",".join(dict.fromkeys(resource for resource, _ in limits))
    fields["limit"] = "; ".join(sentence for _, sentence in limits)
    return Explanation(Reason.NEVER_FITS, fields)


def _cpu_only_limits(
    snap: Snapshot,
    flavors: tuple[str, ...],
    spec: JobSpec,
    task: Resources,
    limits: list[tuple[str, str]],
) -> list[tuple[str, str]]:
    """One limit over all nodes for a CPU-only job (which never asks for a flavor's GPUs)
    when every accepted flavor runs short of the same CPU or memory; otherwise ``limits``."""
    resources = {resource for resource, _ in limits}
    if resources == {"cpu"}:
        most = max(_flavor_capacity(snap, f).largest_node_cpu_milli for f in flavors)
        return [("cpu", f"the largest node has {quantity(most / 1000, 'CPU')}")]
    if resources == {"memory"}:
        most = max(_flavor_capacity(snap, f).largest_node_memory_mib for f in flavors)
        return [("memory", f"the largest node has {memory(most)}")]
    return limits


def explain_no_fit(snap: Snapshot, spec: JobSpec) -> Explanation:
    """Why ``spec`` (which passes ``screen``) does not fit what is free now."""
    flavors = accepted_flavors(snap, spec)
    fields = needs_fields(spec, flavors)
    task = max(spec.tasks, key=lambda t: (t.gpu_milli, t.cpu_milli, t.memory_mib))
    if task.gpu_milli == 0:
        nodes = [i for i, f in enumerate(snap.flavor_of) if f in flavors and snap.schedulable(i)]
        fields["shortfall"] = _cpu_memory_shortfall(snap, nodes, task, "node", fields, "")
        return Explanation(Reason.NO_CAPACITY, fields)
    parts = []
    for flavor in flavors:
        if task.gpu_milli >= MILLI_PER_GPU:
            g = task.gpu_milli // MILLI_PER_GPU
            block = snap.largest_free_block(flavor)
            fit = snap.tasks_that_fit(flavor, g)
            fields[f"largest_free_gpus:{flavor}"] = block
            if len(spec.tasks) == 1 and block < g:
                parts.append(_gpus_free(block, flavor))
            elif fit < len(spec.tasks):
                fitting = "none" if fit == 0 else f"only {fit}"
                parts.append(
                    f"{fitting} of its {len(spec.tasks)} tasks fit on the free GPUs of {flavor}"
                )
            else:
                room = [i for i in _up_nodes(snap, flavor) if snap.whole_free[i] >= g]
                where = f"{flavor} node with {quantity(g, 'free GPU')}"
                parts.append(_cpu_memory_shortfall(snap, room, task, where, fields, f":{flavor}"))
        else:
            up = _up_nodes(snap, flavor)
            most = max((max(snap.dev_free[i], default=0) for i in up), default=0)
            share = number(task.gpu_milli / MILLI_PER_GPU)
            if most < task.gpu_milli:
                parts.append(
                    f"it needs {share} of one GPU; at most {number(most / MILLI_PER_GPU)} of one"
                    f" GPU of {flavor} is free"
                )
            else:
                room = [i for i in up if max(snap.dev_free[i], default=0) >= task.gpu_milli]
                where = f"{flavor} node with {share} of a GPU free"
                parts.append(_cpu_memory_shortfall(snap, room, task, where, fields, f":{flavor}"))
    fields["shortfall"] = "; ".join(parts) if parts else "not enough is free"
    return Explanation(Reason.NO_CAPACITY, fields)


def _up_nodes(snap: Snapshot, flavor: str) -> list[int]:
    """The indices of the schedulable nodes of ``flavor``."""
    return [i for i, f in enumerate(snap.flavor_of) if f == flavor and snap.schedulable(i)]


def _gpus_free(block: int, flavor: str) -> str:
    """How many GPUs of ``flavor`` one node has free at most, in words."""
    if block == 0:
        return f"no whole GPU of {flavor} is free"
    if block == 1:
        return f"at most 1 GPU of {flavor} is free on one node"
    return f"at most {block} GPUs of {flavor} are free on one node"


def _cpu_memory_shortfall(
    snap: Snapshot,
    nodes: list[int],
    task: Resources,
    where: str,
    fields: dict[str, FieldValue],
    key: str,
) -> str:
    """Which of CPU and memory is short on ``nodes`` (the nodes that have the GPUs the task
    needs, described as "one ``where``"), with the amounts it needs and the most free on one
    of them; records those amounts in ``fields`` (``most_free_cpu_milli`` and
    ``most_free_memory_mib``, each with ``key`` appended)."""
    if not nodes:
        return f"no {where} is up"
    cpu = max(snap.cpu_free[i] for i in nodes)
    mem = max(snap.mem_free[i] for i in nodes)
    fields[f"most_free_cpu_milli{key}"] = cpu
    fields[f"most_free_memory_mib{key}"] = mem
    needed = {"cpu": quantity(task.cpu_milli / 1000, "CPU"), "memory": memory(task.memory_mib)}
    free = {"cpu": quantity(cpu / 1000, "CPU"), "memory": memory(mem)}
    short = [
        r for r, over in (("cpu", task.cpu_milli > cpu), ("memory", task.memory_mib > mem)) if over
    ]
    if not short:
        # Each amount is free on some node, but never both on the same one.
        return f"no {where} has {needed['cpu']} and {needed['memory']} free at the same time"
    what = " and ".join("CPU" if r == "cpu" else "memory" for r in short)
    has = " and ".join(free[r] for r in short)
    wants = " and ".join(needed[r] for r in short)
    verb = "is" if short == ["memory"] or (short == ["cpu"] and cpu == 1000) else "are"
    return f"not enough free {what}: at most {has} {verb} free on one {where}; it needs {wants}"
