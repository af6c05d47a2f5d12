"""Reading Slurm 22.05's output: recorded ``sinfo --json``, ``squeue --json``, ``squeue`` in
allot's text format and ``scontrol show job -o`` of the test
cluster (two nodes, four GPUs each) with a drained, a reserved and a down node, and jobs that
completed, failed, were killed, cancelled, run, and wait."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from allot.core.model import NodeState
from allot.executors.slurm.parse import (
    Allocation,
    SlurmOutputError,
    decode_wait_status,
    expand_hostlist,
    parse_gres,
    parse_job_record,
    parse_jobs,
    parse_nodes,
    parse_queue,
)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_a_drained_node_is_draining_with_slurms_reason() -> None:
    up, drained = parse_nodes(fixture("sinfo_drain_resv.json"))
    assert (up.name, up.state, up.slurm_state) == ("n1", NodeState.UP, "idle")
    assert (drained.state, drained.slurm_state, drained.reason) == (
        NodeState.DRAINING,
        "idle+DRAIN",
        "bad fan",
    )


def test_a_reserved_node_takes_nothing_new() -> None:
    nodes = {n.name: n for n in parse_nodes(fixture("sinfo_reserved.json"))}
    assert (nodes["n2"].state, nodes["n2"].slurm_state) == (NodeState.DRAINING, "idle+RESERVED")


def test_a_down_node_is_down_and_a_busy_one_up() -> None:
    nodes = {n.name: n for n in parse_nodes(fixture("sinfo_down_mixed.json"))}
    assert (nodes["n1"].state, nodes["n1"].slurm_state) == (NodeState.UP, "mixed")
    assert (nodes["n2"].state, nodes["n2"].reason) == (NodeState.DOWN, "dead")


def test_a_nodes_size_and_gpus_come_from_sinfo() -> None:
    node = parse_nodes(fixture("sinfo_drain_resv.json"))[0]
    assert (node.cpus, node.memory_mb, node.gpus, node.flavor) == (8, 16000, 4, "gpu")
    assert (node.address, node.partitions) == ("127.0.0.1", ("gpu",))


@pytest.mark.parametrize(
    ("gres", "expected"),
    [
        ("gpu:a100:8", (8, "a100")),
        ("gpu:a100:8(S:0-1),shard:8", (8, "a100")),
        ("gpu:4", (4, "gpu")),
        ("gpu:(null):2(IDX:0-1)", (2, "gpu")),
        ("gpu:h100:4(S:0),gpu:a100:2(S:1)", (6, "h100")),
        ("", (0, "cpu")),
        ("(null)", (0, "cpu")),
        ("N/A", (0, "cpu")),
    ],
)
def test_gres_gives_the_gpu_count_and_flavor(gres: str, expected: tuple[int, str]) -> None:
    assert parse_gres(gres) == expected


def test_a_gres_count_that_is_no_number_is_refused() -> None:
    with pytest.raises(SlurmOutputError, match="'gpu:a100:x' is not a number"):
        parse_gres("gpu:a100:x")


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("vm", ["vm"]),
        ("vm-[1-3]", ["vm-1", "vm-2", "vm-3"]),
        ("gpu[01-02,07],cpu1", ["gpu01", "gpu02", "gpu07", "cpu1"]),
        ("rack[1-2]-a", ["rack1-a", "rack2-a"]),
        ("", []),
    ],
)
def test_hostlists_expand(expression: str, names: list[str]) -> None:
    assert expand_hostlist(expression) == names


def test_jobs_end_with_their_exit_codes_and_reasons() -> None:
    jobs = {j.name: j for j in parse_jobs(fixture("squeue_mixed.json"))}
    assert (jobs["gang"].state, jobs["gang"].exit_code, jobs["gang"].nodes) == (
        "COMPLETED",
        0,
        ("n1", "n2"),
    )
    assert (jobs["f3"].exit_code, jobs["f3"].reason) == (3, "NonZeroExitCode")
    assert (jobs["sig"].exit_code, jobs["sig"].reason) == (-9, "JobLaunchFailure")
    assert (jobs["can"].state, jobs["can"].exit_code) == ("CANCELLED", -15)


def test_running_jobs_hold_their_gpus_and_cores_per_node() -> None:
    jobs = {j.name: j for j in parse_jobs(fixture("squeue_mixed.json"))}
    assert jobs["foreign"].allocations == (Allocation("n1", 2, 3, 0),)
    assert (jobs["foreign"].active, jobs["foreign"].holding) == (True, True)
    assert jobs["foreign"].exit_code is None
    assert (jobs["pend"].state, jobs["pend"].reason, jobs["pend"].holding) == (
        "PENDING",
        "Resources",
        False,
    )
    assert jobs["pend"].allocations == ()


@pytest.mark.parametrize(("status", "code"), [(0, 0), (768, 3), (9, -9), (15, -15), (256, 1)])
def test_wait_statuses_decode(status: int, code: int) -> None:
    assert decode_wait_status(status) == code


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "squeue --json: not JSON"),
        ("[]", "not a JSON object"),
        ('{"jobs": 3}', "no 'jobs' list"),
        ('{"jobs": [{"name": "x"}]}', "'job_id' is missing or not a int"),
        ('{"errors": ["boom"], "jobs": []}', "Slurm reported errors"),
    ],
)
def test_malformed_output_is_refused_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(SlurmOutputError, match=message):
        parse_jobs(text)


def test_the_queue_lists_waiting_and_running_jobs_with_names_that_hold_bars() -> None:
    pending, running = parse_queue(fixture("squeue_active.txt"))
    assert (pending.job_id, pending.state, pending.reason, pending.nodes, pending.name) == (
        4,
        "PENDING",
        "Resources",
        (),
        "allot-pend",
    )
    assert (running.state, running.reason, running.nodes, running.name) == (
        "RUNNING",
        "",
        ("vm-1",),
        "foreign job|x",
    )


def test_a_queue_line_that_cannot_be_read_is_refused() -> None:
    with pytest.raises(SlurmOutputError, match=re.escape("cannot read the line 'x|y'")):
        parse_queue("x|y\n")


def test_scontrol_gives_an_ended_jobs_exit_code_and_reason() -> None:
    failed = parse_job_record(fixture("scontrol_job_failed.txt"))
    assert (failed.job_id, failed.name, failed.state, failed.reason, failed.exit_code) == (
        1,
        "allot-f3",
        "FAILED",
        "NonZeroExitCode",
        3,
    )
    assert failed.nodes == ("vm-1",)
    killed = parse_job_record(fixture("scontrol_job_signal.txt"))
    assert (killed.exit_code, killed.reason) == (-9, "JobLaunchFailure")


def test_scontrol_output_without_a_job_is_refused() -> None:
    with pytest.raises(SlurmOutputError, match="no JobId or JobState"):
        parse_job_record("slurm_load_jobs error: Invalid job id specified")
