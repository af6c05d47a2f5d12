"""Explanations in words: every code renders (with its fields or without), amounts read as
people write them (1 GPU, 2 GPUs), and a job that never fits names what runs short, in both
halves of its sentence."""

from __future__ import annotations

import pytest

from allot.core.explain import Explanation, Reason, quantity
from allot.core.model import Cluster, JobSpec, Node, Resources, RunningJob, TaskPlacement
from allot.core.placement.diagnose import explain_no_fit, screen
from allot.core.snapshot import Snapshot


def _spec(*tasks: Resources, flavors: tuple[str, ...] = ()) -> JobSpec:
    return JobSpec(1, "t", "u", "q", tasks, flavors=flavors)


def _small() -> Snapshot:
    """One node like a workstation with 2 declared GPUs and few CPUs."""
    return Snapshot(Cluster((Node("ws", "gpu", 2, 2000, 24105),)))


@pytest.mark.parametrize("reason", list(Reason))
def test_every_code_renders_without_its_fields(reason: Reason) -> None:
    why = Explanation(reason)
    assert why.message()
    assert isinstance(why.remedy(), str)
    assert why.to_dict()["reason"] == str(reason)


def test_amounts_are_singular_only_for_one() -> None:
    assert [quantity(v, "GPU") for v in (1, 2, 0.5, 1000)] == [
        "1 GPU",
        "2 GPUs",
        "0.5 GPUs",
        "1000 GPUs",
    ]
    assert quantity(1, "CPU") == "1 CPU"


@pytest.mark.parametrize(
    ("task", "resource", "message"),
    [
        (
            Resources(1000, 8000, 32768),
            "cpu",
            "needs 8 CPUs per task on one gpu node; the largest has 2 CPUs",
        ),
        (
            Resources(0, 1000, 999_999_999),
            "memory",
            "needs 999999999 MiB of memory per task on one gpu node; the largest has 24105 MiB"
            " of memory",
        ),
        (
            Resources(4000, 1000, 1024),
            "gpu",
            "needs 4 GPUs per task on one gpu node; the largest has 2 GPUs",
        ),
        (
            Resources(1000, 3000, 1024),
            "cpu",
            "needs 3 CPUs per task on one gpu node; the largest has 2 CPUs",
        ),
    ],
)
def test_a_job_that_never_fits_names_the_resource_that_runs_short(
    task: Resources, resource: str, message: str
) -> None:
    why = screen(_small(), _spec(task))
    assert why is not None
    assert why.reason is Reason.NEVER_FITS
    assert why.fields["limit_resource"] == resource
    assert why.message() == message


def test_one_gpu_short_reads_in_the_singular() -> None:
    snap = Snapshot(Cluster((Node("n", "gpu", 1, 8000, 8192),)))
    why = screen(snap, _spec(Resources(2000, 1000, 1024)))
    assert why is not None
    assert why.message() == "needs 2 GPUs per task on one gpu node; the largest has 1 GPU"
    cpu = screen(
        Snapshot(Cluster((Node("n", "cpu", 0, 1000, 8192),))), _spec(Resources(0, 2000, 1))
    )
    assert cpu is not None
    assert cpu.message() == "needs 2 CPUs per task on one cpu node; the largest has 1 CPU"


def test_a_gang_larger_than_all_nodes_names_the_tasks() -> None:
    why = screen(_small(), _spec(*[Resources(1000, 1000, 1024)] * 3))
    assert why is not None
    assert why.fields["limit_resource"] == "tasks"
    assert why.message() == (
        "needs 3 tasks of 1 GPU each at once on gpu nodes; all of them together hold only 2"
    )
    assert "fewer tasks" in why.remedy()


def test_a_task_no_one_node_holds_whole_names_its_shape() -> None:
    # One node has the GPUs, the other the CPUs: each amount fits somewhere, the task nowhere.
    snap = Snapshot(Cluster((Node("a", "H100", 8, 1000, 8192), Node("b", "H100", 1, 64000, 8192))))
    why = screen(snap, _spec(Resources(4000, 4000, 1024)))
    assert why is not None
    assert why.fields["limit_resource"] == "shape"
    assert why.message() == (
        "needs 4 GPUs, 4 CPUs and 1024 MiB of memory together on one H100 node; no node has"
        " all of that at once"
    )


def test_each_accepted_flavor_says_what_it_lacks() -> None:
    snap = Snapshot(
        Cluster((Node("a", "A100", 4, 64000, 65536), Node("h", "H100", 8, 4000, 65536)))
    )
    why = screen(snap, _spec(Resources(6000, 8000, 1024), flavors=("A100", "H100")))
    assert why is not None
    assert why.fields["limit_resource"] == "gpu,cpu"
    assert why.message() == (
        "needs 6 GPUs and 8 CPUs per task on one A100 or H100 node; the largest A100 node has"
        " 4 GPUs; the largest H100 node has 4 CPUs"
    )


def test_a_shortfall_of_one_gpu_is_singular() -> None:
    snap = _small()
    busy = JobSpec(901, "t", "u", "q", (Resources(1000, 500, 1024),))
    snap.start(RunningJob(busy, 0.0, (TaskPlacement("ws", (0,), 1000),), "gpu"))
    why = explain_no_fit(snap, _spec(Resources(2000, 1000, 1024)))
    assert why.message() == ("needs 2 GPUs of gpu on one node; largest free block of gpu is 1 GPU")


def test_waiting_for_preempted_names_the_victims_and_their_deadline() -> None:
    plain = Explanation(Reason.WAITING_FOR_PREEMPTED)
    assert plain.message() == "waits for jobs being preempted to stop; it fits once they have"
    many = Explanation(Reason.WAITING_FOR_PREEMPTED, {"victims": "12, 14", "stop_by": 5400.0})
    assert many.message() == (
        "waits for jobs 12, 14 to stop (by t=5400) to take the room they free"
    )
    one = Explanation(Reason.WAITING_FOR_PREEMPTED, {"victims": "12"})
    assert one.message() == "waits for job 12 to stop to take the room it frees"
    assert many.message(lambda t: f"at {t:g}").endswith("(by at 5400) to take the room they free")


def test_preempting_agrees_in_number() -> None:
    one = Explanation(Reason.PREEMPTING, {"victims": "3", "strategy": "priority", "until": 60})
    assert one.message() == "preempting job 3 (priority); starts once it stops, by t=60"
    two = Explanation(Reason.PREEMPTING, {"victims": "3, 4", "strategy": "reclaim", "until": 60})
    assert two.message() == "preempting jobs 3, 4 (reclaim); starts once they stop, by t=60"


def test_quota_amounts_agree_in_number() -> None:
    why = Explanation(
        Reason.QUOTA,
        {"queue": "x", "flavor": "H100", "resource": "gpu", "needed": 1000, "available": 0,
         "limit": "nominal", "node": "x"},
    )  # fmt: skip
    assert why.message() == (
        "queue x would exceed its nominal quota of H100 gpu: needs 1 GPU, 0 GPUs left"
    )
