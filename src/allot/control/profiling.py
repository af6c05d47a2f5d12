"""Use cases of profiling: a profiled job's report (``report``) and hardware recommendation
(``recommend``, which records the per-flavor step times for throughput-aware placement), and
node checks (``record_check``, which may drain a node that measures below its flavor).

The analysis itself is ``allot.profile``'s; this module finds what it needs: the job's latest
run whose tasks left traces (where its executor keeps them, ``ExecutorRegistry.profile_dir``),
the flavor catalog, a node's latest check (the measured roofline of a flavor the catalog
lacks, such as a CPU), and the step times other runs of the same job class measured.

A job class is the job's name without an array index (``sweep[3]`` is ``sweep``): runs of one
class are taken to do the same work per step. Errors: NotFoundError for an unknown job or
node; ConflictError when there is nothing to analyse yet (not profiled, not started, no
trace), saying why; RejectedError for a bad override.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allot.config.errors import ConfigError
from allot.control.ports import ConflictError, NotFoundError
from allot.control.principal import Principal
from allot.control.records import FlavorSpeed, JobRecord, NodeCheckRecord, RunRecord
from allot.control.services import ControlPlane, RejectedError
from allot.core.model import MILLI_PER_GPU, NodeState
from allot.profile.analysis import NoStepsError, WorkloadProfile, analyse_files
from allot.profile.bottleneck import Bottleneck, diagnose
from allot.profile.catalog import Catalog, load_catalog
from allot.profile.health import Measurement, Verdict, baseline, judge
from allot.profile.recommend import Measured, Recommendation, recommend
from allot.profile.roofline import Placement, Roof, dominant_dtype, place_profile
from allot.profile.trace import TraceError, trace_files

_ARRAY_INDEX = re.compile(r"\[\d+\]$")
MEASURED = "measured"


@dataclass(frozen=True)
class ProfileReport:
    """A profiled run's analysis, with where it came from."""

    job: JobRecord
    run: RunRecord
    node: str
    profile: WorkloadProfile
    traces: int
    placement: Placement | None
    roof_source: str  # where the roofline's peaks came from, or why there is none
    bottleneck: Bottleneck
    counted: bool
    total_steps: int | None
    unprofiled_step_seconds: float | None


@dataclass(frozen=True)
class RecommendationReport:
    """A recommendation and what was recorded from it."""

    report: ProfileReport
    recommendation: Recommendation
    job_class: str
    in_cluster: frozenset[str]
    recorded: int


def job_class(record: JobRecord) -> str:
    """The class a job's speeds are shared under: its name without an array index."""
    name = _ARRAY_INDEX.sub("", record.job.name)
    return name or f"job-{record.id}"


class Profiling:
    """Profiling's use cases over a control plane (its store, executors and clock)."""

    def __init__(self, control: ControlPlane, catalog: Catalog | None = None) -> None:
        self.control = control
        self._catalog = catalog

    @property
    def catalog(self) -> Catalog:
        """The flavor catalog (read on first use); ConflictError when it is invalid."""
        if self._catalog is None:
            try:
                self._catalog = load_catalog()
            except ConfigError as exc:
                raise ConflictError(f"the server's flavor catalog is invalid: {exc}") from None
        return self._catalog

    # ------------------------------------------------------------------ jobs

    def report(
        self,
        job_id: int,
        *,
        principal: Principal,
        flops_per_step: float | None = None,
        bytes_per_step: float | None = None,
    ) -> ProfileReport:
        """Analyse the job's latest profiled run (see the module docstring for errors); a job
        ``principal`` may not read is one that does not exist."""
        for name, value in (("flops_per_step", flops_per_step), ("bytes_per_step", bytes_per_step)):
            if value is not None and not value > 0:
                raise RejectedError(name, f"must be > 0 when given, got {value}")
        record = self.control.get(job_id, principal=principal)
        request = record.job.launch.profile
        if request is None:
            raise ConflictError(
                f"job {job_id} was not profiled: submit it with allot submit --profile"
                " (or profile: in its job file)"
            )
        run, folders = self._traced_run(record)
        files = [f for folder in folders for f in trace_files(folder)]
        try:
            profile = analyse_files(files)
        except (NoStepsError, TraceError) as exc:
            raise ConflictError(f"job {job_id}: cannot analyse its trace: {exc}") from None
        meta = _meta(folders)
        node = run.placement[0].node if run.placement else ""
        roof, source = self._roof(run.flavor, node, dominant_dtype(profile.classes()))
        placement = None
        if roof is not None:
            try:
                placement = place_profile(
                    profile, roof, flops_per_step=flops_per_step, bytes_per_step=bytes_per_step
                )
            except ValueError as exc:
                source = f"no roofline: {exc}"
        totals = [m["total_steps"] for m in meta if isinstance(m.get("total_steps"), int)]
        means = [
            m["mean_step_seconds"] for m in meta if isinstance(m.get("mean_step_seconds"), float)
        ]
        return ProfileReport(
            job=record,
            run=run,
            node=node,
            profile=profile,
            traces=len(files),
            placement=placement,
            roof_source=source,
            bottleneck=diagnose(profile, placement),
            counted=flops_per_step is None and bytes_per_step is None,
            total_steps=max(totals) if totals else None,
            unprofiled_step_seconds=max(means) if means else None,
        )

    def _traced_run(self, record: JobRecord) -> tuple[RunRecord, list[Path]]:
        """The latest run of the job whose tasks left traces, and their folders."""
        runs = self.control.store.runs_of(record.id)
        if not runs:
            raise ConflictError(f"job {record.id} has not started yet; profile it once it has run")
        executors = self.control.executors
        for run in reversed(runs):
            folders = [executors.profile_dir(run, i) for i in range(len(run.placement))]
            found = [f for f in folders if f is not None and trace_files(f)]
            if found:
                return run, found
        request = record.job.launch.profile
        assert request is not None
        window = f"steps {request.skip + 2}-{request.skip + 1 + request.steps}"
        if record.state.is_terminal:
            why = (
                f"job {record.id} ended without a trace: its Python did not import PyTorch's"
                f" optimizers (torch.optim), or it ended before {window}; see allot logs"
                f" {record.id}"
            )
        else:
            why = (
                f"job {record.id} has no trace yet: the profiler records {window} (optimizer"
                " steps) and writes the trace after them"
            )
        raise ConflictError(why)

    def _roof(self, flavor: str, node: str, dtype: str) -> tuple[Roof | None, str]:
        spec = self.catalog.find(flavor)
        if spec is not None:
            return Roof.of(spec, dtype), f"catalog: {spec.name}"
        check = self.control.store.node_checks().get(node)
        if check is not None:
            values = {str(r["name"]): float(r["value"]) for r in check.results}  # type: ignore[arg-type]
            compute = values.get(f"gemm_{dtype}") or values.get("gemm_fp32")
            memory = values.get("memory")
            if compute and memory:
                measured_dtype = dtype if f"gemm_{dtype}" in values else "fp32"
                return (
                    Roof(f"{node} (measured)", measured_dtype, compute * 1e12, memory * 1e9),
                    f"allot node check of {node}",
                )
        return None, (
            f"no peak figures for flavor {flavor!r}: it is not in the flavor catalog, and node"
            f" {node or '?'} has no allot node check results"
        )

    def recommend(
        self,
        job_id: int,
        *,
        principal: Principal,
        steps: int | None = None,
        flops_per_step: float | None = None,
        bytes_per_step: float | None = None,
    ) -> RecommendationReport:
        """Rank every catalog flavor for the job and record the per-flavor step times (anyone
        who may read the job: the times describe the job class, not a tenant's data)."""
        if steps is not None and steps < 1:
            raise RejectedError("steps", f"must be >= 1 when given, got {steps}")
        report = self.report(
            job_id,
            principal=principal,
            flops_per_step=flops_per_step,
            bytes_per_step=bytes_per_step,
        )
        record = report.job
        klass = job_class(record)
        catalog = self.catalog
        source = catalog.find(report.run.flavor)
        own = source.name if source is not None else report.run.flavor
        measured = {
            s.flavor: Measured(s.step_seconds, s.job_id)
            for s in self.control.store.flavor_speeds(klass)
            if s.basis == MEASURED and s.flavor != own and s.job_id != record.id
        }
        gpus = sum(t.gpu_milli for t in record.job.tasks) / MILLI_PER_GPU
        chosen = steps or report.total_steps or 1000
        result = recommend(
            report.profile,
            catalog,
            flavor=report.run.flavor,
            gpus=gpus or float(len(record.job.tasks)),
            steps=chosen,
            measured=measured,
        )
        if not steps and not report.total_steps:
            result = Recommendation(
                result.estimates,
                result.steps,
                result.gpus,
                (*result.assumptions, "the run's step count is unknown: 1000 steps assumed"),
            )
        now = self.control.clock.now()
        speeds = [FlavorSpeed(klass, own, report.profile.step_seconds, MEASURED, record.id, now)]
        speeds += [
            FlavorSpeed(klass, e.flavor, e.step_seconds, "estimated", record.id, now)
            for e in result.estimates
            if e.basis == "estimated"
        ]
        self.control.store.record_speeds(speeds)
        flavors = {n.flavor for n in self.control.store.nodes()}
        in_cluster = frozenset(
            spec.name for spec in catalog.flavors if any(spec is catalog.find(f) for f in flavors)
        )
        return RecommendationReport(report, result, klass, in_cluster, len(speeds))

    def speeds(self, job_class: str | None = None) -> list[FlavorSpeed]:
        """Recorded per-flavor step times (of one job class, when given)."""
        return self.control.store.flavor_speeds(job_class)

    # ------------------------------------------------------------------ nodes

    def record_check(
        self,
        node_name: str,
        measurements: Sequence[Measurement],
        *,
        device: str,
        drain: bool,
        principal: Principal,
    ) -> NodeCheckRecord:
        """Judge a node's measurements against its flavor (or, for a flavor the catalog
        lacks, against other nodes of it), store the check, and drain the node when asked and
        it is below expected. Cluster admins only."""
        principal.check_admin("node")
        store = self.control.store
        nodes = {n.name: n for n in store.nodes()}
        node = nodes.get(node_name)
        if node is None:
            known = ", ".join(sorted(nodes)) or "none"
            raise NotFoundError(f"node: no node named {node_name!r}; nodes: {known}")
        checks = store.node_checks()
        peers = baseline(
            [_measurements(c) for name, c in checks.items()
             if name != node_name and nodes.get(name) is not None
             and nodes[name].flavor == node.flavor]
        )  # fmt: skip
        catalog = self.catalog
        verdict: Verdict = judge(
            measurements, catalog.find(node.flavor), catalog.expected, peers, flavor=node.flavor
        )
        drained = drain and verdict.healthy is False and node.state is NodeState.UP
        if drained:
            self.control.set_node_state(node_name, NodeState.DRAINING, principal=principal)
        return store.record_node_check(
            NodeCheckRecord(
                0,
                node_name,
                node.flavor,
                self.control.clock.now(),
                verdict.healthy,
                verdict.summary + ("; drained" if drained else ""),
                device,
                tuple(
                    {
                        "name": r.name,
                        "device": r.device,
                        "value": r.value,
                        "unit": r.unit,
                        "expected": r.expected,
                        "ok": r.ok,
                    }
                    for r in verdict.results
                ),
                drained,
            )
        )

    def node_checks(self) -> dict[str, NodeCheckRecord]:
        """Each node's latest check."""
        return self.control.store.node_checks()


def _measurements(check: NodeCheckRecord) -> list[Measurement]:
    return [
        Measurement(str(r["name"]), str(r["device"]), float(r["value"]))  # type: ignore[arg-type]
        for r in check.results
    ]


def _meta(folders: Sequence[Path]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for folder in folders:
        for path in sorted(folder.glob("meta*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                found.append(data)
    return found
