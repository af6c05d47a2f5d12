"""A run's status from the states of its tasks: the aggregation rules and the sentences."""

from __future__ import annotations

import pytest

from allot.control.ports import RunState
from allot.executors.task_state import TaskPhase, TaskState, run_status

P = TaskPhase


def ran(index: int, code: int, *, timed_out: bool = False) -> TaskState:
    return TaskState(index, P.EXITED, exit_code=code, timed_out=timed_out)


@pytest.mark.parametrize(
    ("tasks", "state", "codes", "detail"),
    [
        ([TaskState(0, P.UNKNOWN), TaskState(1, P.UNKNOWN)], RunState.UNKNOWN, (), None),
        ([TaskState(0, P.STARTING)], RunState.RUNNING, (None,), "the task is starting"),
        (
            [TaskState(0, P.RUNNING), ran(1, 3), TaskState(2, P.STARTING)],
            RunState.RUNNING,
            (None, 3, None),
            "1 of 3 tasks running, 1 starting, 1 exited; task 1 exited with code 3",
        ),
        (
            [ran(0, 0), TaskState(1, P.LOST, note="was lost: gone"), TaskState(2, P.UNKNOWN)],
            RunState.LOST,
            (0, None, None),
            "task 1 was lost: gone (and 1 more)",
        ),
        ([ran(0, 0), ran(1, 0)], RunState.EXITED, (0, 0), "all 2 tasks exited with code 0"),
        (
            [ran(0, -9), ran(1, 2)],
            RunState.EXITED,
            (-9, 2),
            "task 0 killed by signal 9 (SIGKILL) (and 1 more failed)",
        ),
        (
            [ran(0, 143, timed_out=True)],
            RunState.EXITED,
            (143,),
            "the task hit its time limit and exited with code 143",
        ),
    ],
)
def test_run_status_aggregates_its_tasks(
    tasks: list[TaskState], state: RunState, codes: tuple[int | None, ...], detail: str | None
) -> None:
    status = run_status("r", tasks)
    assert (status.state, status.exit_codes) == (state, codes)
    assert status.detail == (detail or "run r was never launched here")
    assert status.timed_out == any(t.timed_out for t in tasks)
