"""The status of a run from its tasks' reports and Slurm's job: every rule of
``allot.executors.slurm.tracking``."""

from __future__ import annotations

from allot.control.ports import RunState
from allot.executors.slurm.parse import SlurmJob
from allot.executors.slurm.tracking import TaskExit, run_status


def job(state: str, exit_code: int | None = None, reason: str = "") -> SlurmJob:
    return SlurmJob(12, "allot-r", state, reason, ("n1", "n2"), exit_code)


def test_a_run_never_submitted_is_unknown_with_every_task_unclaimed() -> None:
    status = run_status("r", 2, [None, None], None, job_id=None, claimed=[False, False])
    assert (status.state, status.unclaimed) == (RunState.UNKNOWN, (0, 1))


def test_a_pending_job_runs_and_says_why_it_waits() -> None:
    status = run_status(
        "r", 1, [None], job("PENDING", reason="Resources"), job_id=12, claimed=[False]
    )
    assert (status.state, status.notes) == (
        RunState.RUNNING,
        ("Slurm job 12 is pending (Resources)",),
    )


def test_a_gang_shows_a_failed_task_while_the_job_runs() -> None:
    status = run_status(
        "r", 2, [TaskExit(3), None], job("RUNNING"), job_id=12, claimed=[True, True]
    )
    assert (status.state, status.exit_codes) == (RunState.RUNNING, (3, None))


def test_a_run_whose_tasks_all_reported_has_exited_while_slurm_lets_it_go() -> None:
    status = run_status("r", 1, [TaskExit(0)], job("COMPLETING"), job_id=12, claimed=[True])
    assert (status.state, status.exit_codes) == (RunState.EXITED, (0,))


def test_one_running_task_shows_no_exit_code() -> None:
    status = run_status("r", 1, [None], job("RUNNING"), job_id=12, claimed=[True])
    assert (status.state, status.exit_codes) == (RunState.RUNNING, ())


def test_an_ended_job_takes_each_tasks_own_exit_code() -> None:
    exits = [TaskExit(0), TaskExit(3)]
    status = run_status("r", 2, exits, job("FAILED", 3), job_id=12, claimed=[True, True])
    assert (status.state, status.exit_codes) == (RunState.EXITED, (0, 3))


def test_a_job_forgotten_by_slurm_is_exited_when_every_task_reported() -> None:
    status = run_status("r", 1, [TaskExit(0)], None, job_id=12, claimed=[True])
    assert (status.state, status.exit_codes) == (RunState.EXITED, (0,))


def test_a_job_forgotten_before_its_task_reported_is_lost() -> None:
    status = run_status("r", 1, [None], None, job_id=12, claimed=[True])
    assert status.state is RunState.LOST
    assert status.detail == "Slurm job 12 ended and was forgotten before task 0 reported its exit"


def test_a_node_failure_loses_the_run_and_names_the_nodes() -> None:
    status = run_status(
        "r",
        2,
        [TaskExit(0), None],
        job("NODE_FAIL", reason="NodeDown"),
        job_id=12,
        claimed=[True, True],
    )
    assert status.state is RunState.LOST
    assert status.detail == "node failure on n1, n2: Slurm job 12 ended NODE_FAIL (NodeDown)"


def test_slurms_time_limit_times_the_run_out() -> None:
    status = run_status("r", 1, [None], job("TIMEOUT", -15), job_id=12, claimed=[True])
    assert (status.state, status.timed_out, status.exit_codes) == (RunState.EXITED, True, (-15,))


def test_a_kill_gives_the_tasks_that_did_not_report_the_signal() -> None:
    status = run_status("r", 1, [None], job("CANCELLED", -9), job_id=12, claimed=[True])
    assert (status.state, status.exit_codes) == (RunState.EXITED, (-9,))


def test_a_failure_before_the_task_reported_is_lost_with_slurms_words() -> None:
    failed = job("FAILED", 127, reason="JobLaunchFailure")
    status = run_status("r", 1, [None], failed, job_id=12, claimed=[False])
    assert (status.state, status.exit_codes) == (RunState.LOST, (127,))
    assert status.detail == (
        "Slurm job 12 ended FAILED (JobLaunchFailure), exit code 127, before task 0 reported"
        " its exit"
    )


def test_the_runners_time_limit_is_kept() -> None:
    exits = [TaskExit(-15, timed_out=True)]
    status = run_status("r", 1, exits, job("COMPLETED", 0), job_id=12, claimed=[True])
    assert (status.state, status.timed_out) == (RunState.EXITED, True)
