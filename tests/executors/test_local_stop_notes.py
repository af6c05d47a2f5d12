"""What the task's log says when allot stops it: a line starting ``allot:`` for each SIGTERM
the runner forwards or sends, and one for the SIGKILL after the grace period, whether the
executor sent it (a cancel or preemption whose grace ran out) or the runner did (a time
limit). Real runners and processes; the executor's grace period is 0.5 s here."""

from __future__ import annotations

import signal
from collections.abc import Callable

from allot.control.ports import RunState, TaskLaunch
from allot.executors.local import LocalExecutor

Until = Callable[..., object]
RunBuilder = Callable[..., list[TaskLaunch]]
ReadLog = Callable[[LocalExecutor, str, int], str]

STUBBORN = 'trap "" TERM; echo ready; while true; do sleep 0.05; done'
TERM_LINE = (
    "allot: asked to stop: sent SIGTERM; SIGKILL follows if the task still runs after the "
    "0.5 s grace period\n"
)
KILL_LINE = "allot: sent SIGKILL after the 0.5 s grace period\n"


def _ended(executor: LocalExecutor, run_id: str, until: Until) -> None:
    until(lambda: executor.status(run_id, 1).state is RunState.EXITED, f"run {run_id} to end")


def test_a_stop_and_the_kill_after_its_grace_period_are_in_the_log(
    executor: LocalExecutor, run: RunBuilder, until: Until, read_log: ReadLog
) -> None:
    executor.launch(run("cancelled", STUBBORN))
    until(lambda: "ready" in read_log(executor, "cancelled", 0), "the trap to be set")
    executor.signal("cancelled", kill=False)
    until(lambda: "SIGTERM" in read_log(executor, "cancelled", 0), "the SIGTERM line")
    executor.signal("cancelled", kill=True)  # what the loop does once the grace period is over
    _ended(executor, "cancelled", until)
    assert executor.status("cancelled", 1).exit_codes == (-signal.SIGKILL,)
    assert read_log(executor, "cancelled", 0) == "ready\n" + TERM_LINE + KILL_LINE


def test_a_task_that_stops_in_time_gets_no_kill_line(
    executor: LocalExecutor, run: RunBuilder, until: Until, read_log: ReadLog
) -> None:
    executor.launch(run("polite", "echo ready; sleep 30"))
    until(lambda: "ready" in read_log(executor, "polite", 0), "the task to start")
    executor.signal("polite", kill=False)
    _ended(executor, "polite", until)
    assert read_log(executor, "polite", 0) == "ready\n" + TERM_LINE


def test_the_time_limit_and_its_sigkill_are_in_the_log(
    executor: LocalExecutor, run: RunBuilder, until: Until, read_log: ReadLog
) -> None:
    executor.launch(run("limit", STUBBORN, time_limit=1.0))
    _ended(executor, "limit", until)
    assert read_log(executor, "limit", 0) == (
        "ready\n"
        "allot: time limit of 1 s reached: sent SIGTERM; SIGKILL follows if the task still "
        "runs after the 0.5 s grace period\n" + KILL_LINE
    )


def test_a_sigkill_from_elsewhere_is_not_said_to_be_allot_s(
    executor: LocalExecutor, run: RunBuilder, until: Until, read_log: ReadLog
) -> None:
    executor.launch(run("oom", "echo ready; kill -KILL $$"))
    _ended(executor, "oom", until)
    assert read_log(executor, "oom", 0) == "ready\n"
