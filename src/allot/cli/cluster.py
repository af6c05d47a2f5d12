"""The cluster commands: ``nodes`` and ``queues`` (what there is and who uses it), ``drain``
and ``undrain`` (take a node out of scheduling and back). Each is one SDK call; the shared
options, error path and rendering live in ``allot.cli.output``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from allot.cli import output
from allot.cli.output import (
    OutputFormat,
    OutputOption,
    TokenOption,
    UrlOption,
    memory,
    reported,
)
from allot.core.units import number

if TYPE_CHECKING:
    from allot.client import NodeOut

NodeName = Annotated[
    str, typer.Argument(metavar="NODE", help="The node's name.", show_default=False)
]


def nodes(
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """List the nodes, like sinfo: flavor, GPUs, CPUs, memory, state and latest check."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        found = allot.nodes()
    if fmt is OutputFormat.json:
        output.print_json(found)
        return
    grid = output.table("NAME", "FLAVOR", "GPUS", "CPUS", "MEMORY", "STATE", "CHECK")
    for node in found:
        declared = " (declared)" if node.gpu_source == "declared" and node.gpus else ""
        grid.add_row(
            escape(node.name),
            escape(node.flavor),
            f"{node.gpus}{declared}",
            number(node.cpus),
            memory(node.memory_mib),
            node.state,
            escape(_check(node)),
        )
    output.print_table(grid)
    if any(n.gpus and n.gpu_sharing == "unenforced" for n in found):
        output.say(
            "GPU sharing is unenforced: tasks that share a GPU run without limits (no CUDA MPS"
            " daemon; start one with nvidia-cuda-mps-control -d to bound each share)."
        )


def _check(node: NodeOut) -> str:
    """The latest node check in a few words: ``ok``, ``LOW: gemm_bf16 41%``, ``recorded``."""
    check = node.check
    if check is None:
        return "-"
    day = check.checked_at.strftime("%Y-%m-%d")
    if check.healthy is None:
        return f"recorded {day}"
    if check.healthy:
        return f"ok {day}"
    low = [r for r in check.results if r.ok is False and r.expected]
    worst = min(low, key=lambda r: r.value / (r.expected or 1.0), default=None)
    detail = "" if worst is None else f" {worst.name} {worst.value / (worst.expected or 1):.0%}"
    return f"LOW{detail} {day}"


def _per_flavor(gpus: dict[str, float], empty: str) -> str:
    return ", ".join(f"{flavor}: {number(n)}" for flavor, n in sorted(gpus.items())) or empty


def queues(
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """List the queues: nominal GPU quota per flavor, GPUs in use, and job counts."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        found = allot.queues()
    if fmt is OutputFormat.json:
        output.print_json(found)
        return
    grid = output.table("NAME", "TENANT", "COHORT", "NOMINAL", "USED", "PENDING", "RUNNING")
    for queue in found:
        grid.add_row(
            escape(queue.name),
            escape(queue.tenant),
            escape(queue.cohort or "-"),
            escape(_per_flavor(queue.nominal_gpus, "unlimited")),
            escape(_per_flavor(queue.used_gpus, "0")),
            str(queue.pending),
            str(queue.running),
        )
    output.print_table(grid)


def _changed(node: NodeOut, message: str, fmt: OutputFormat) -> None:
    output.answer(fmt, node, escape(message))


def drain(
    name: NodeName,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Place nothing new on a node; what runs there keeps running."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        node = allot.drain(name)
    _changed(node, f"Draining node {node.name}: running work continues, nothing new starts", fmt)


def undrain(
    name: NodeName,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Let a drained node take new work again."""
    with reported(fmt=fmt), output.make_client(url, token) as allot:
        node = allot.undrain(name)
    _changed(node, f"Node {node.name} is {node.state}", fmt)
