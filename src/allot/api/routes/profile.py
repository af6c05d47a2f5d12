"""Routes of profiling: ``GET /v1/jobs/{id}/profile`` (a profiled job's analysis),
``POST /v1/jobs/{id}/recommendation`` (rank the flavors for it and record their step times),
``POST /v1/nodes/{name}/checks`` (store a node check, drain a node below expected when asked)
and ``GET /v1/flavor-speeds`` (the recorded step times, for throughput-aware placement).

Thin like every route: parse, call the ``Profiling`` use cases, map to wire models. The
analysis reads trace files and takes a moment, so these routes are plain functions (run in
the thread pool).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from allot.api.audit import note
from allot.api.auth import Caller
from allot.api.problems import documented
from allot.api.routes.jobs import JobId
from allot.control.profiling import ProfileReport, Profiling, RecommendationReport
from allot.control.records import FlavorSpeed, NodeCheckRecord
from allot.profile.analysis import RankProfile
from allot.profile.health import Measurement
from allot.wire.profiling import (
    BottleneckOut,
    CheckResultOut,
    FlavorEstimateOut,
    FlavorSpeedOut,
    KernelOut,
    NodeCheckIn,
    NodeCheckOut,
    ProfileOut,
    RankOut,
    RecommendationOut,
    RecommendRequest,
    RooflineOut,
)

router = APIRouter(tags=["profiling"])


async def profiling(request: Request) -> Profiling:
    """The application's profiling use cases (made with the app, see ``create_app``)."""
    found: Profiling = request.app.state.profiling
    return found


Profiler = Annotated[Profiling, Depends(profiling)]


@router.get("/jobs/{job_id}/profile", responses=documented(404, 409))
def job_profile(
    job_id: JobId,
    profiler: Profiler,
    caller: Caller,
    flops_per_step: Annotated[float | None, Query(gt=0, description="Instead of counted.")] = None,
    bytes_per_step: Annotated[float | None, Query(gt=0, description="Instead of counted.")] = None,
) -> ProfileOut:
    """A profiled job's analysis: time split per rank, top kernels, overlap, data-loader
    stalls, roofline and the headline bottleneck. 409 when there is no trace yet, saying why."""
    report = profiler.report(
        job_id, principal=caller, flops_per_step=flops_per_step, bytes_per_step=bytes_per_step
    )
    return profile_out(report)


@router.post("/jobs/{job_id}/recommendation", responses=documented(404, 409))
def job_recommendation(
    job_id: JobId,
    profiler: Profiler,
    caller: Caller,
    request: Request,
    body: RecommendRequest | None = None,
) -> RecommendationOut:
    """Estimate the job's step time on every flavor of the catalog, rank them by work per
    dollar and by time to finish, and record the estimates for placement."""
    asked = body or RecommendRequest()
    found = profiler.recommend(
        job_id,
        principal=caller,
        steps=asked.steps,
        flops_per_step=asked.flops_per_step,
        bytes_per_step=asked.bytes_per_step,
    )
    note(request, f"job {job_id}", tenant=found.report.job.job.tenant, job_id=job_id,
         reason=f"{found.recorded} step times recorded")  # fmt: skip
    return recommendation_out(found)


@router.post("/nodes/{name}/checks", status_code=201, responses=documented(403, 404))
def record_node_check(
    name: Annotated[str, Path(min_length=1, max_length=200)],
    check: NodeCheckIn,
    profiler: Profiler,
    caller: Caller,
    request: Request,
) -> NodeCheckOut:
    """Store what ``allot node check`` measured on a node, judged against its flavor; with
    ``drain`` a node below expected is drained (cluster admins only)."""
    stored = profiler.record_check(
        name,
        [Measurement(m.name, m.device, m.value) for m in check.measurements],
        device=check.device,
        drain=check.drain,
        principal=caller,
    )
    note(request, f"node {name}", reason=stored.summary)
    return check_out(stored)


@router.get("/flavor-speeds")
def flavor_speeds(
    profiler: Profiler, caller: Caller, job_class: str | None = None
) -> list[FlavorSpeedOut]:
    """Recorded step times per job class and flavor: measured by profiled runs, or estimated
    by ``recommendation``."""
    return [speed_out(s) for s in profiler.speeds(job_class)]


def _instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def check_out(check: NodeCheckRecord) -> NodeCheckOut:
    """A node check as sent to clients."""
    return NodeCheckOut(
        node=check.node,
        flavor=check.flavor,
        checked_at=_instant(check.checked_at),
        healthy=check.healthy,
        summary=check.summary,
        device=check.device,
        results=[CheckResultOut.model_validate(dict(r)) for r in check.results],
        drained=check.drained,
    )


def speed_out(speed: FlavorSpeed) -> FlavorSpeedOut:
    """A recorded step time as sent to clients."""
    return FlavorSpeedOut(
        job_class=speed.job_class,
        flavor=speed.flavor,
        step_seconds=speed.step_seconds,
        basis="measured" if speed.basis == "measured" else "estimated",
        job_id=speed.job_id,
        recorded_at=_instant(speed.recorded_at),
    )


def _rank_out(rank: RankProfile) -> RankOut:
    return RankOut(
        rank=rank.rank,
        device=rank.device,
        steps=rank.steps,
        step_seconds=rank.step_seconds,
        compute=rank.compute,
        communication=rank.communication,
        memory_copies=rank.memory_copies,
        idle=rank.idle,
        communication_overlap=rank.overlap,
        data_loader=rank.data_loader,
        data_loader_idle=rank.data_loader_idle,
        flops=rank.flops,
        bytes=rank.bytes,
        kernels_per_step=rank.kernels_per_step,
        peak_memory_bytes=rank.peak_memory_bytes,
        top_kernels=[
            KernelOut(name=k.name, calls=k.calls, seconds=k.seconds, share=k.share)
            for k in rank.top_kernels
        ],
    )


def profile_out(report: ProfileReport) -> ProfileOut:
    """A profile report as sent to clients."""
    profile = report.profile
    roofline = None
    placement = report.placement
    if placement is not None:
        roof = placement.roof
        roofline = RooflineOut(
            flavor=roof.label,
            source=report.roof_source,
            dtype=roof.dtype,
            peak_tflops=roof.peak_flops / 1e12,
            memory_gbps=roof.bandwidth / 1e9,
            ridge_point=roof.ridge,
            intensity=placement.intensity,
            achieved_tflops=placement.achieved / 1e12,
            achieved_in_compute_tflops=placement.achieved_in_compute / 1e12,
            attainable_tflops=placement.attainable / 1e12,
            mfu=placement.mfu,
            bound="memory" if placement.bound == "memory" else "compute",
        )
    b = report.bottleneck
    return ProfileOut(
        job_id=report.job.id,
        run_id=report.run.run_id,
        flavor=report.run.flavor,
        node=report.node,
        traces=report.traces,
        step_seconds=profile.step_seconds,
        flops_per_step=placement.flops_per_step if placement else profile.mean("flops"),
        bytes_per_step=placement.bytes_per_step if placement else profile.mean("bytes"),
        counted=report.counted,
        total_steps=report.total_steps,
        unprofiled_step_seconds=report.unprofiled_step_seconds,
        ranks=[_rank_out(r) for r in profile.ranks],
        roofline=roofline,
        roofline_missing="" if roofline is not None else report.roof_source,
        bottleneck=BottleneckOut(
            kind=b.kind, headline=b.headline, evidence=list(b.evidence), remedy=b.remedy
        ),
    )


def recommendation_out(found: RecommendationReport) -> RecommendationOut:
    """A recommendation as sent to clients."""
    rec = found.recommendation
    return RecommendationOut(
        job_id=found.report.job.id,
        job_class=found.job_class,
        profiled_on=found.report.run.flavor,
        steps=rec.steps,
        gpus=rec.gpus,
        estimates=[
            FlavorEstimateOut(
                flavor=e.flavor,
                in_cluster=e.flavor in found.in_cluster,
                step_seconds=e.step_seconds,
                basis="profiled"
                if e.basis == "profiled"
                else "measured"
                if e.basis == "measured"
                else "estimated",
                note=e.note,
                speedup=e.speedup,
                price_per_hour=e.price_per_hour,
                steps_per_dollar=e.steps_per_dollar,
                hours_to_finish=e.hours_to_finish,
                cost_to_finish=e.cost_to_finish,
                fits_memory=e.fits_memory,
                rank_by_cost=e.rank_by_cost,
                rank_by_time=e.rank_by_time,
            )
            for e in rec.estimates
        ],
        assumptions=list(rec.assumptions),
        recorded=found.recorded,
    )
