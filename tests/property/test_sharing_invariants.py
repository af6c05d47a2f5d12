"""Invariants of GPU sharing, packing, speeds and topology over random clusters and job streams.

- No device ever holds more than 1000 milli-GPU, nor more GPU memory than it has (on nodes
  that track it), counted independently from the placements; nor CPU or memory over a node's.
- A gang starts whole, on one flavor and within one node pool, and within one domain of the
  topology when its colocation is required; a fractional task takes one
  device, a whole-GPU task exactly its devices.
- Every packer, with or without throughput-aware ranking, keeps these and leaves the snapshot
  as it found it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allot.core.cycle import schedule
from allot.core.model import MILLI_PER_GPU, Cluster, JobSpec, Node, Resources, RunningJob
from allot.core.placement.packing import PACKERS, TaskMix, packer_named
from allot.core.placement.throughput import speed_norms
from allot.core.policy import get_policy
from allot.core.snapshot import Snapshot

FLAVORS = ("A100", "T4")
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def clusters(draw: st.DrawFn) -> Cluster:
    nodes = []
    for i in range(draw(st.integers(1, 6))):
        gpus = draw(st.sampled_from((1, 2, 4, 8)))
        nvlink = draw(st.sampled_from(((), tuple(d // 2 for d in range(gpus)))))
        nodes.append(
            Node(
                f"n{i}",
                draw(st.sampled_from(FLAVORS)),
                gpus,
                draw(st.sampled_from((8_000, 32_000))),
                draw(st.sampled_from((32_768, 262_144))),
                topology=("b0", f"r{i % 2}"),
                pool=draw(st.sampled_from(("", "", "other"))),
                gpu_memory_mib=draw(st.sampled_from((0, 16_384, 40_960))),
                nvlink=nvlink,
            )
        )
    return Cluster(tuple(nodes))


@st.composite
def jobs(draw: st.DrawFn, first_id: int, count: int) -> list[JobSpec]:
    specs = []
    for k in range(count):
        gpu = draw(st.sampled_from((0, 100, 250, 460, 500, 750, 1000, 2000, 4000)))
        task = Resources(
            gpu,
            draw(st.sampled_from((0, 1000, 4000))),
            draw(st.sampled_from((0, 4096, 16_384))),
            draw(st.sampled_from((0, 4096, 12_000, 20_000))) if gpu else 0,
        )
        flavors = draw(st.sampled_from(((), ("A100",), ("T4", "A100"))))
        specs.append(
            JobSpec(
                first_id + k,
                "t",
                "u",
                "q",
                (task,) * draw(st.sampled_from((1, 1, 1, 2, 3))),
                flavors=flavors,
                flavor_order=draw(st.booleans()),
                speeds=(("A100", draw(st.sampled_from((1.0, 1.5, 3.0)))),),
                colocate=(level := draw(st.sampled_from(("", "node", "rack", "block")))),
                colocate_required=bool(level) and draw(st.booleans()),
            )
        )
    return specs


def _assert_within_capacity(cluster: Cluster, running: Sequence[RunningJob]) -> None:
    by_name = {n.name: n for n in cluster.nodes}
    milli: dict[tuple[str, int], int] = defaultdict(int)
    gpu_mem: dict[tuple[str, int], int] = defaultdict(int)
    cpu: dict[str, int] = defaultdict(int)
    mem: dict[str, int] = defaultdict(int)
    for job in running:
        for task, where in zip(job.spec.tasks, job.placement, strict=True):
            for d in where.devices:
                milli[where.node, d] += where.gpu_milli_per_device
                gpu_mem[where.node, d] += task.gpu_memory_mib
            cpu[where.node] += task.cpu_milli
            mem[where.node] += task.memory_mib
    assert all(use <= MILLI_PER_GPU for use in milli.values()), milli
    for (name, _), use in gpu_mem.items():
        size = by_name[name].gpu_memory_mib
        assert not size or use <= size
    assert all(cpu[n] <= by_name[n].cpu_milli for n in cpu)
    assert all(mem[n] <= by_name[n].memory_mib for n in mem)


@SETTINGS
@given(
    clusters(),
    st.integers(0, 10).flatmap(lambda n: jobs(1_000, n)),
    st.integers(1, 12).flatmap(lambda n: jobs(1, n)),
    st.sampled_from((None, *PACKERS)),
    st.booleans(),
)
def test_sharing_never_over_commits_a_device(
    cluster: Cluster,
    seed_jobs: list[JobSpec],
    pending: list[JobSpec],
    packer: str | None,
    throughput: bool,
) -> None:
    mix = TaskMix.of(seed_jobs + pending)
    norms = speed_norms(seed_jobs + pending, cluster.flavors) if throughput else None

    def snapshot(running: Sequence[RunningJob] = ()) -> Snapshot:
        packing = None if packer is None else packer_named(packer, mix, 3)
        return Snapshot(cluster, running, packing=packing, speed_norms=norms)

    first = schedule(snapshot(), seed_jobs, get_policy("besteffort"), 0.0)
    by_id = {j.id: j for j in seed_jobs + pending}
    running = [RunningJob(by_id[s.job_id], 0.0, s.placement, s.flavor) for s in first.starts]
    snap = snapshot(running)
    before = ([list(d) for d in snap.dev_free], [list(m) for m in snap.dev_mem_free])
    plan = schedule(snap, pending, get_policy("besteffort"), 10.0)
    assert ([list(d) for d in snap.dev_free], [list(m) for m in snap.dev_mem_free]) == before
    started = running + [
        RunningJob(by_id[s.job_id], 10.0, s.placement, s.flavor) for s in plan.starts
    ]
    _assert_within_capacity(cluster, started)
    nodes = {n.name: n for n in cluster.nodes}
    for job in started:
        spec = job.spec
        assert len(job.placement) == len(spec.tasks)
        assert len({nodes[p.node].pool for p in job.placement}) == 1
        assert {nodes[p.node].flavor for p in job.placement} == {job.flavor}
        assert not spec.flavors or job.flavor in spec.flavors
        if spec.colocate_required:
            depth = {"node": 3, "rack": 2, "block": 1}[spec.colocate]
            paths = {(*nodes[p.node].topology, p.node)[:depth] for p in job.placement}
            assert len(paths) == 1
        for task, where in zip(spec.tasks, job.placement, strict=True):
            if task.is_fractional:
                assert len(where.devices) == 1
                assert where.gpu_milli_per_device == task.gpu_milli
            elif task.gpu_milli:
                assert len(set(where.devices)) == task.whole_gpus
    # The snapshot's own accounting agrees.
    for job in started[len(running) :]:
        snap.start(job)
