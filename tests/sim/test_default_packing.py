"""The simulator's default placement: allot's packer, on once a share of a GPU arrives."""

from __future__ import annotations

from allot.core.model import Cluster, JobSpec, Node, Resources
from allot.core.placement.packing import AllotPacker, uses_packer
from allot.core.policy import get_policy
from allot.sim.engine import Simulation
from allot.sim.workload import TraceJob

POLICY = get_policy("besteffort")


def _job(job_id: int, gpu: int, submit: float = 0.0) -> JobSpec:
    return JobSpec(job_id, "t", "u", "q", (Resources(gpu, 1000, 0),), submit_time=submit)


def _node(name: str, gpus: int, flavor: str) -> Node:
    return Node(name, flavor, gpus, 64_000, 262_144)


def test_the_simulator_packs_by_default_once_a_share_arrives() -> None:
    cluster = Cluster((_node("g0", 4, "G2"), _node("t0", 1, "T4")))
    whole = TraceJob(_job(1, 1000), 10.0)
    share = TraceJob(_job(2, 500, submit=1.0), 5.0)
    sim = Simulation(cluster, [whole, share], POLICY)
    assert sim.snapshot.packing is None
    sim.run()
    assert isinstance(sim.snapshot.packing, AllotPacker)
    assert Simulation(cluster, [whole, share], POLICY, packing=None).observer is None
    assert uses_packer([share.spec])
    assert not uses_packer([whole.spec])
