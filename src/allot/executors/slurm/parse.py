"""Reading what Slurm prints: nodes from ``sinfo --json``, jobs from ``squeue --json`` (both
as Slurm 22.05, which Debian ships, writes them: the ``openapi/v0.0.38`` layout), the queue
from ``squeue`` with ``QUEUE_FORMAT`` (the cheap form, polled often), one ended job from
``scontrol show job -o`` (its exit code and reason, when accounting is off), hostlist
expressions (``vm-[1-2],gpu[01-03]``), GRES strings (``gpu:a100:8(S:0-1)``) and the wait
statuses Slurm reports as exit codes. Pure functions over text, so every rule is tested
against recorded real output (``tests/executors/slurm/fixtures``).

Invariants
- A node's state is what allot may do with it: ``up`` only when Slurm would start new work
  there (idle, mixed, allocated, with no drain, reservation or maintenance flag); ``draining``
  when work runs on but nothing new may start (drained, reserved, in maintenance, failing);
  ``down`` when nothing runs (down, not responding, powered down, unknown).
- A GRES type is the node's GPU flavor (``gpu:a100:8`` -> ``a100``); a node with untyped GPUs
  has the flavor ``gpu``, one without any ``cpu``.
- Malformed output raises ``SlurmOutputError`` naming what was wrong, never a bare KeyError.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from allot.core.model import NodeState

_T = TypeVar("_T")
UNTYPED_GPU = "gpu"
NO_GPU = "cpu"
# Base states in which no work runs; flags under which running work continues but nothing new
# may start; flags that mean the node is gone for now.
DOWN_STATES = frozenset({"down", "future", "unknown", "error"})
HOLD_FLAGS = frozenset({"DRAIN", "RESERVED", "MAINTENANCE", "FAIL", "PLANNED", "REBOOT_REQUESTED"})
GONE_FLAGS = frozenset({"NOT_RESPONDING", "POWERED_DOWN", "POWERING_DOWN", "POWERING_UP"})
# Job states in which a job holds (or is about to hold) its nodes.
ACTIVE_JOB_STATES = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING", "REQUEUED"}
)
HOLDING_JOB_STATES = frozenset({"CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING"})
# ``squeue -h -t ACTIVE -o QUEUE_FORMAT``: id, state, reason, nodes, name (last: it may hold '|').
QUEUE_FORMAT = "%i|%T|%r|%N|%j"
QUEUE_STATES = ",".join(sorted(ACTIVE_JOB_STATES))


class SlurmOutputError(ValueError):
    """Slurm printed something this module cannot read (the message says what)."""


@dataclass(frozen=True, slots=True)
class SlurmNode:
    """One node as ``sinfo`` reports it."""

    name: str
    address: str
    cpus: int
    memory_mb: int
    gpus: int
    flavor: str
    partitions: tuple[str, ...]
    state: NodeState
    slurm_state: str  # Slurm's words: "idle", "mixed+DRAIN", ...
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Allocation:
    """What one job holds on one node."""

    node: str
    gpus: int
    cpus: int
    memory_mb: int


@dataclass(frozen=True, slots=True)
class SlurmJob:
    """One job as ``squeue`` reports it (ended jobs stay listed for ``MinJobAge`` seconds)."""

    job_id: int
    name: str
    state: str  # PENDING, RUNNING, COMPLETING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
    reason: str
    nodes: tuple[str, ...]
    exit_code: int | None  # decoded: negative for a signal; None while it runs
    comment: str = ""
    allocations: tuple[Allocation, ...] = ()

    @property
    def active(self) -> bool:
        """Pending, running or completing: it has not ended."""
        return self.state in ACTIVE_JOB_STATES

    @property
    def holding(self) -> bool:
        """It holds its nodes' resources now."""
        return self.state in HOLDING_JOB_STATES


def expand_hostlist(expression: str) -> list[str]:
    """``vm-[1-3],gpu[01,07]`` -> ``vm-1 vm-2 vm-3 gpu01 gpu07`` (Slurm's hostlist syntax,
    one bracket per name)."""
    names: list[str] = []
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\][^,\[]*)*", expression):
        match = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", part)
        if match is None:
            names.append(part)
            continue
        prefix, ranges, suffix = match.groups()
        for item in ranges.split(","):
            low, _, high = item.partition("-")
            if not low.isdigit() or (high and not high.isdigit()):
                raise SlurmOutputError(f"hostlist {expression!r}: bad range {item!r}")
            width = len(low)
            for number in range(int(low), int(high or low) + 1):
                names.append(f"{prefix}{number:0{width}d}{suffix}")
    return names


def parse_gres(gres: str) -> tuple[int, str]:
    """The GPU count and flavor of a node's ``Gres`` (``gpu:a100:8(S:0-1),shard:8`` ->
    ``(8, "a100")``; ``gpu:4`` -> ``(4, "gpu")``; no GPU -> ``(0, "cpu")``). Several GPU types
    on one node are added up under the first type's name."""
    count, flavor = 0, NO_GPU
    for item in _gres_items(gres):
        fields = item.split(":")
        if fields[0] != "gpu":
            continue
        number = fields[-1]
        if not number.isdigit():
            raise SlurmOutputError(f"gres {gres!r}: the GPU count of {item!r} is not a number")
        if count == 0:
            flavor = fields[1] if len(fields) == 3 and fields[1] else UNTYPED_GPU
        count += int(number)
    return count, flavor


def _gres_items(gres: str) -> list[str]:
    """The comma-separated items of a GRES string without their ``(...)`` details."""
    without = re.sub(r"\([^)]*\)", "", gres or "")
    return [item for item in without.split(",") if item and item != "N/A"]


def node_state(base: str, flags: list[str]) -> NodeState:
    """What allot may do with a node in Slurm's ``base`` state with ``flags`` (see the module
    docstring)."""
    upper = {f.upper() for f in flags}
    if base.lower() in DOWN_STATES or upper & GONE_FLAGS:
        return NodeState.DOWN
    if upper & HOLD_FLAGS or base.lower() in {"drain", "drained", "draining", "maint"}:
        return NodeState.DRAINING
    return NodeState.UP


def decode_wait_status(status: int) -> int:
    """A wait status as Slurm reports it (``768``: exit 3; ``9``: killed by SIGKILL) as the
    exit code allot records (``3``; ``-9``)."""
    signal = status & 0x7F
    return -signal if signal else (status >> 8) & 0xFF


def parse_nodes(text: str) -> list[SlurmNode]:
    """The nodes of ``sinfo --json``."""
    data = _document(text, "sinfo --json")
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        raise SlurmOutputError("sinfo --json: no 'nodes' list")
    return [_node(n) for n in nodes]


def _node(raw: Any) -> SlurmNode:
    name = _field(raw, "name", str, "sinfo node")
    where = f"sinfo node {name}"
    gpus, flavor = parse_gres(_field(raw, "gres", str, where))
    base = _field(raw, "state", str, where)
    flags = [str(f) for f in raw.get("state_flags") or ()]
    words = "+".join([base, *flags])
    return SlurmNode(
        name=name,
        address=str(raw.get("address") or name),
        cpus=_field(raw, "cpus", int, where),
        memory_mb=_field(raw, "real_memory", int, where),
        gpus=gpus,
        flavor=flavor,
        partitions=tuple(str(p) for p in raw.get("partitions") or ()),
        state=node_state(base, flags),
        slurm_state=words,
        reason=str(raw.get("reason") or ""),
    )


def parse_jobs(text: str) -> list[SlurmJob]:
    """The jobs of ``squeue --json``."""
    data = _document(text, "squeue --json")
    jobs = data.get("jobs")
    if not isinstance(jobs, list):
        raise SlurmOutputError("squeue --json: no 'jobs' list")
    return [_job(j) for j in jobs]


def _job(raw: Any) -> SlurmJob:
    job_id = _field(raw, "job_id", int, "squeue job")
    where = f"squeue job {job_id}"
    state = _field(raw, "job_state", str, where)
    nodes = tuple(expand_hostlist(str(raw.get("nodes") or "")))
    code = raw.get("exit_code")
    ended = state not in ACTIVE_JOB_STATES
    return SlurmJob(
        job_id=job_id,
        name=str(raw.get("name") or ""),
        state=state,
        reason="" if raw.get("state_reason") in (None, "None") else str(raw["state_reason"]),
        nodes=nodes,
        exit_code=decode_wait_status(code) if ended and isinstance(code, int) else None,
        comment=str(raw.get("comment") or ""),
        allocations=_allocations(raw, where) if state in HOLDING_JOB_STATES else (),
    )


def _allocations(raw: Any, where: str) -> tuple[Allocation, ...]:
    """What the job holds on each node: GPUs from ``gres_detail`` (one entry per node, in the
    order of ``job_resources.allocated_nodes``), cores and memory from the latter."""
    resources = raw.get("job_resources") or {}
    per_node = resources.get("allocated_nodes") or []
    details = [str(d) for d in raw.get("gres_detail") or ()]
    found: list[Allocation] = []
    for index, node in enumerate(per_node):
        name = _field(node, "nodename", str, where)
        cores = 0
        for socket in (node.get("sockets") or {}).values():
            cores += sum(1 for c in (socket.get("cores") or {}).values() if "allocated" in str(c))
        detail = details[index] if index < len(details) else ""
        gpus = parse_gres(detail)[0] if detail else 0
        memory = node.get("memory_allocated")
        found.append(Allocation(name, gpus, cores, memory if isinstance(memory, int) else 0))
    return tuple(found)


def _document(text: str, command: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise SlurmOutputError(f"{command}: not JSON ({err})") from None
    if not isinstance(data, dict):
        raise SlurmOutputError(f"{command}: not a JSON object")
    errors = data.get("errors") or []
    if errors:
        raise SlurmOutputError(f"{command}: Slurm reported errors: {errors}")
    return data


def _field(raw: Any, key: str, kind: type[_T], where: str) -> _T:
    value = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SlurmOutputError(f"{where}: {key!r} is missing or not a {kind.__name__}")
    return value


def parse_queue(text: str) -> list[SlurmJob]:
    """The jobs of ``squeue -h -t QUEUE_STATES -o QUEUE_FORMAT``."""
    jobs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|", 4)
        if len(fields) != 5 or not fields[0].isdigit():
            raise SlurmOutputError(f"squeue: cannot read the line {line!r}")
        job_id, state, reason, nodes, name = fields
        jobs.append(
            SlurmJob(
                job_id=int(job_id),
                name=name,
                state=state,
                reason="" if reason == "None" else reason,
                nodes=tuple(expand_hostlist(nodes)),
                exit_code=None,
            )
        )
    return jobs


def parse_job_record(text: str) -> SlurmJob:
    """One job of ``scontrol show job -o ID`` (``ExitCode=3:0`` -> 3, ``0:9`` -> -9)."""
    fields = dict(
        re.findall(r"(?:^| )(JobId|JobName|JobState|Reason|ExitCode|NodeList)=(\S*)", text)
    )
    job_id, state = fields.get("JobId", ""), fields.get("JobState", "")
    if not job_id.isdigit() or not state:
        raise SlurmOutputError(f"scontrol show job: no JobId or JobState in {text[:80]!r}")
    code, _, signal = fields.get("ExitCode", "").partition(":")
    exit_code = None
    if code.isdigit() and signal.isdigit():
        exit_code = -int(signal) if int(signal) else int(code)
    reason = fields.get("Reason", "")
    nodes = fields.get("NodeList", "")
    return SlurmJob(
        job_id=int(job_id),
        name=fields.get("JobName", ""),
        state=state,
        reason="" if reason == "None" else reason,
        nodes=tuple(expand_hostlist("" if nodes == "(null)" else nodes)),
        exit_code=exit_code if state not in ACTIVE_JOB_STATES else None,
    )
