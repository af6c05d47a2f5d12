"""Explanations in words: every code renders (with its fields or without), amounts read as
people write them (1 GPU, 2 GPUs), and a job that never fits names what runs short, in both
halves of its sentence."""

from __future__ import annotations

import pytest

from allot.core.explain import Explanation, Reason, memory, quantity
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
            "needs 976562.5 GiB of memory per task on one node; the largest has 23.54 GiB"
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
    assert cpu.message() == "needs 2 CPUs per task on one node; the largest has 1 CPU"


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
        "needs 4 GPUs, 4 CPUs and 1 GiB of memory together on one H100 node; no node has"
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
    assert (
        why.message() == "needs 2 GPUs of gpu on one node; at most 1 GPU of gpu is free on one node"
    )


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
    one = Explanation(Reason.PREEMPTING, {"victims": "3", "strategy": "within_queue", "until": 60})
    assert one.message() == (
        "preempting job 3 to make room for it (lower priority in the same queue); starts once"
        " it stops, by t=60"
    )
    two = Explanation(Reason.PREEMPTING, {"victims": "3, 4", "strategy": "reclaim", "until": 60})
    assert two.message() == (
        "preempting jobs 3, 4 to make room for it (reclaiming quota lent to another queue);"
        " starts once they stop, by t=60"
    )


def test_quota_amounts_agree_in_number() -> None:
    why = Explanation(
        Reason.QUOTA,
        {"queue": "x", "flavor": "H100", "resource": "gpu", "needed": 1000, "available": 0,
         "limit": "nominal", "node": "x"},
    )  # fmt: skip
    assert why.message() == (
        "queue x would exceed its nominal quota of H100 GPUs: needs 1 GPU, 0 GPUs left"
    )


def _busy(
    snap: Snapshot, job_id: int, node: str, devices: tuple[int, ...], used: Resources
) -> None:
    """Start a running job holding ``devices`` of ``node`` and ``used`` CPU and memory."""
    spec = JobSpec(job_id, "t", "u", "q", (used,))
    placement = TaskPlacement(node, devices, used.gpu_milli // max(len(devices), 1))
    snap.start(RunningJob(spec, 0.0, (placement,), snap.flavor_of[snap.node_index[node]]))


def test_a_cpu_only_job_that_never_fits_is_told_of_nodes_not_gpu_nodes() -> None:
    why = screen(_small(), _spec(Resources(0, 16000, 1024)))
    assert why is not None
    assert why.message() == "needs 16 CPUs per task on one node; the largest has 2 CPUs"
    assert "gpu" not in why.message().lower()
    # Over several flavors, one sentence about the largest node of all.
    snap = Snapshot(Cluster((Node("a", "A100", 4, 8000, 65536), Node("h", "H100", 8, 4000, 65536))))
    many = screen(snap, _spec(Resources(0, 16000, 1024)))
    assert many is not None
    assert many.message() == "needs 16 CPUs per task on one node; the largest node has 8 CPUs"
    gang = screen(_small(), _spec(*[Resources(0, 2000, 1024)] * 2))
    assert gang is not None
    assert gang.message() == "needs 2 tasks of 2 CPUs each at once; all nodes together hold only 1"


def test_only_cpu_short_names_cpu_with_the_amounts() -> None:
    snap = Snapshot(Cluster((Node("n", "H100", 8, 16000, 262144),)))
    _busy(snap, 901, "n", (0,), Resources(1000, 14000, 1024))
    why = explain_no_fit(snap, _spec(Resources(4000, 8000, 32768)))
    assert why.message() == (
        "needs 4 GPUs of H100 on one node; not enough free CPU: at most 2 CPUs are free on one"
        " H100 node with 4 free GPUs; it needs 8 CPUs"
    )
    assert "memory" not in why.message()
    assert why.fields["most_free_cpu_milli:H100"] == 2000


def test_only_memory_short_names_memory_with_the_amounts() -> None:
    snap = Snapshot(Cluster((Node("n", "H100", 8, 64000, 65536),)))
    _busy(snap, 901, "n", (0,), Resources(1000, 1000, 53248))
    why = explain_no_fit(snap, _spec(Resources(1000, 2000, 32768)))
    assert why.fields["shortfall"] == (
        "not enough free memory: at most 12 GiB of memory is free on one H100 node with 1 free"
        " GPU; it needs 32 GiB of memory"
    )


def test_cpu_and_memory_both_short_name_both() -> None:
    snap = Snapshot(Cluster((Node("n", "H100", 8, 16000, 65536),)))
    _busy(snap, 901, "n", (0,), Resources(1000, 15000, 60000))
    why = explain_no_fit(snap, _spec(Resources(1000, 4000, 16384)))
    assert why.fields["shortfall"] == (
        "not enough free CPU and memory: at most 1 CPU and 5.41 GiB of memory are free on one"
        " H100 node with 1 free GPU; it needs 4 CPUs and 16 GiB of memory"
    )


def test_cpu_and_memory_free_on_different_nodes() -> None:
    snap = Snapshot(Cluster((Node("a", "cpu", 0, 8000, 8192), Node("b", "cpu", 0, 8000, 8192))))
    _busy(snap, 901, "a", (), Resources(0, 1000, 8000))  # a: CPUs free, memory gone
    _busy(snap, 902, "b", (), Resources(0, 7000, 1024))  # b: memory free, CPUs gone
    why = explain_no_fit(snap, _spec(Resources(0, 4000, 4096)))
    assert why.message() == (
        "needs 4 CPUs on one node; no node has 4 CPUs and 4 GiB of memory free at the same time"
    )


def test_a_cpu_only_job_without_room_uses_no_gpu_words() -> None:
    snap = _small()
    _busy(snap, 901, "ws", (), Resources(0, 1500, 1024))
    why = explain_no_fit(snap, _spec(Resources(0, 1000, 1024)))
    assert why.message() == (
        "needs 1 CPU on one node; not enough free CPU: at most 0.5 CPUs are free on one node;"
        " it needs 1 CPU"
    )


def test_a_share_of_a_gpu_names_the_most_free_on_one_device() -> None:
    snap = _small()
    _busy(snap, 901, "ws", (0,), Resources(800, 100, 64))
    _busy(snap, 902, "ws", (1,), Resources(700, 100, 64))
    why = explain_no_fit(snap, _spec(Resources(500, 100, 64)))
    assert (
        why.fields["shortfall"] == "it needs 0.5 of one GPU; at most 0.3 of one GPU of gpu is free"
    )


def test_no_reservation_says_what_a_user_can_do() -> None:
    why = Explanation(Reason.NO_RESERVATION, {"head": 8})
    assert why.message().startswith("waits behind job 8, which does not fit yet")
    assert "jobs with a --time-limit let the scheduler reserve a start and backfill" in (
        why.message()
    )
    assert "--time-limit" in why.remedy()
    assert "job 8" in why.remedy()


def test_behind_reservation_and_reserved_read_plainly() -> None:
    behind = Explanation(Reason.BEHIND_RESERVATION, {"head": 812, "until": 5400})
    assert behind.message() == (
        "waits so as not to delay job 812, which has room reserved from t=5400: started now,"
        " it might still be running then"
    )
    assert behind.remedy().startswith("a time limit or runtime estimate (--time-limit, --estimate)")
    reserved = Explanation(
        Reason.RESERVED,
        {"tasks": 1, "gpu_milli_per_task": 8000, "flavors": "H100", "at": 60, "nodes": "n1"},
    )
    assert reserved.message() == (
        "needs 8 GPUs of H100 on one node; it is next: room is reserved for it on n1 from t=60"
    )


def test_quota_on_cpu_and_memory_names_the_flavor_of_the_nodes() -> None:
    cpu = Explanation(
        Reason.QUOTA,
        {"queue": "x", "flavor": "H100", "resource": "cpu", "needed": 4000, "available": 1000,
         "limit": "borrowing_limit", "node": "x"},
    )  # fmt: skip
    assert cpu.message() == (
        "queue x would exceed its borrowing limit of CPUs on H100 nodes: needs 4 CPUs, 1 CPU left"
    )


@pytest.mark.parametrize(
    ("mib", "words"),
    [(512, "512 MiB of memory"), (1024, "1 GiB of memory"), (24105, "23.54 GiB of memory")],
)
def test_memory_reads_in_gib_from_one_gib(mib: int, words: str) -> None:
    assert memory(mib) == words


def test_a_gang_without_room_counts_the_tasks_that_fit() -> None:
    snap = _small()
    _busy(snap, 901, "ws", (0,), Resources(1000, 500, 1024))
    why = explain_no_fit(snap, _spec(*[Resources(1000, 500, 1024)] * 2))
    assert why.message() == (
        "needs 2 tasks x 1 GPU of gpu; only 1 of its 2 tasks fit on the free GPUs of gpu"
    )
