"""``allot whatif``: replay the jobs the live system ran through the simulator under other
policies (or another quota file) and compare them side by side, before rolling a change out.

The history comes from the server through the client, like every command but ``up``: the
nodes as they are now, and every job that ended (succeeded, failed or cancelled after it ran)
and was submitted within ``--since``. Each becomes a trace job: what it asked for (tasks,
flavors, priority, queue, tenant, user, estimate, time limit, checkpointable), submitted at
its recorded submit time, needing its measured run time: the GPU-seconds it attained over
all its runs divided by its GPUs, or, for a job without GPUs, the wall time of its runs from
first start to end. A job cancelled before it ever started is left out (it asked for nothing
that ran). The table is ``allot simulate``'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from allot.cli import output
from allot.cli.output import OutputFormat, OutputOption, TokenOption, UrlOption, reported

if TYPE_CHECKING:
    from allot.client import JobOut, NodeOut
    from allot.core.model import Cluster
    from allot.sim.workload import TraceJob

ENDED = ("succeeded", "failed", "cancelled")
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_span(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s`` in seconds; raises ``typer.BadParameter``."""
    found = _SPAN.match(text.strip())
    if found is None or float(found.group(1)) <= 0:
        raise typer.BadParameter(
            f"must be a positive number followed by s, m, h or d (e.g. 30d), got {text!r}",
            param_hint="--since",
        )
    return float(found.group(1)) * _UNIT[found.group(2)]


def cluster_of(nodes: Sequence[NodeOut]) -> Cluster:
    """The live nodes as a simulator cluster (every node up)."""
    from allot.core.model import Cluster, Node

    return Cluster(
        tuple(
            Node(n.name, n.flavor, n.gpus, round(n.cpus * 1000), n.memory_mib, tuple(n.topology))
            for n in nodes
        ),
        name="live",
    )


def workload_of(jobs: Iterable[JobOut], since: float | None = None) -> list[TraceJob]:
    """The ended jobs that ran, submitted at or after ``since`` (seconds since the epoch), as
    trace jobs with their measured run time; submit times count from the earliest of them."""
    from allot.core.model import JobSpec, Resources
    from allot.sim.workload import TraceJob

    ran = [
        j
        for j in jobs
        if j.state in ENDED
        and j.started_at is not None
        and j.ended_at is not None
        and (since is None or j.submitted_at.timestamp() >= since)
    ]
    if not ran:
        return []
    ran.sort(key=lambda j: (j.submitted_at, j.id))
    earliest = ran[0].submitted_at.timestamp()
    out: list[TraceJob] = []
    for j in ran:
        assert j.started_at is not None
        assert j.ended_at is not None
        task = Resources(
            round(j.resources.gpus * 1000), round(j.resources.cpus * 1000), j.resources.memory_mib
        )
        gpus = j.resources.gpus * j.tasks
        measured = (
            j.attained_gpu_seconds / gpus
            if gpus > 0 and j.attained_gpu_seconds > 0
            else (j.ended_at - j.started_at).total_seconds()
        )
        spec = JobSpec(
            j.id,
            j.tenant,
            j.user,
            j.queue,
            (task,) * j.tasks,
            flavors=tuple(j.flavors),
            priority=j.priority,
            submit_time=j.submitted_at.timestamp() - earliest,
            runtime_estimate=j.runtime_estimate_seconds,
            time_limit=j.time_limit_seconds,
            name=j.name,
            checkpointable=j.checkpointable,
            preemptible=j.preemptible,
        )
        out.append(TraceJob(spec, max(measured, 1.0)))
    return out


def whatif(
    policy: Annotated[
        str,
        typer.Option(metavar="NAMES", help="Comma-separated policies to compare (e.g. allot,las)."),
    ] = "allot",
    since: Annotated[
        str, typer.Option(metavar="SPAN", help="Jobs submitted within this span: 30d, 12h, ...")
    ] = "30d",
    quotas: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Replay under this quota file (see docs/quotas.md)."),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    fmt: OutputOption = OutputFormat.table,
) -> None:
    """Replay your own history under other policies or quotas and compare them side by side."""
    import json
    import time

    from allot.cli.simulate import _policies
    from allot.cli.simulate_cost import sim_prices
    from allot.cli.simulate_table import comparison_table
    from allot.config.quotas import check_against_cluster, load_quotas
    from allot.sim.engine import Simulation
    from allot.sim.metrics import compute_metrics

    with reported(fmt=fmt):
        window = parse_span(since)
        chosen = _policies(policy)
        with output.make_client(url, token) as allot:
            cluster = cluster_of(allot.nodes())
            jobs = workload_of(allot.iter_jobs(state=list(ENDED)), time.time() - window)
        quota_config = None
        if quotas is not None:
            quota_config = load_quotas(quotas)
            check_against_cluster(quota_config, cluster.flavors, quotas)
        if not jobs:
            raise output.InputError(f"--since: no job ended that was submitted within {since}")
        # Billed fair share replays with the flavor catalog's list prices (the server's
        # prices file is not sent to clients).
        billing = sim_prices(None, cluster.flavors) if quota_config is not None else None
        metrics = {
            p.name: compute_metrics(
                Simulation(cluster, jobs, p, quotas=quota_config, billing=billing).run()
            )
            for p in chosen
        }
    if fmt is OutputFormat.json:
        typer.echo(json.dumps({name: m.to_dict() for name, m in metrics.items()}, indent=2))
        return
    title = f"{len(jobs):,} jobs of the last {since} on {len(cluster.nodes)} nodes"
    output.print_table(comparison_table(metrics, title))
