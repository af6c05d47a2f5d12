"""The executor registry: a run goes to the executor of its node pool, nodes are stamped with
their pool, a placement that spans pools or names an unknown node is refused, and a batch of
statuses asks each executor once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from allot.control.ports import RunState, RunStatus, TaskLaunch
from allot.control.records import Launch, RunPhase, RunRecord
from allot.control.registry import ExecutorRegistry, UnknownPoolError
from allot.core.model import Node, TaskPlacement


@dataclass
class Recording:
    """An executor that records what it is asked."""

    nodes: list[Node]
    source: str = "declared"
    asked: list[list[str]] = field(default_factory=list)
    launched: list[str] = field(default_factory=list)
    signals: list[tuple[str, bool]] = field(default_factory=list)
    callbacks: list[Callable[[str], None]] = field(default_factory=list)

    def inventory(self) -> list[Node]:
        return list(self.nodes)

    def inventory_source(self) -> str:
        return self.source

    def launch(self, tasks: Sequence[TaskLaunch]) -> None:
        self.launched.append(tasks[0].run_id)

    def status(self, run_id: str, num_tasks: int) -> RunStatus:
        return RunStatus(run_id, RunState.RUNNING)

    def statuses(self, runs: Sequence[tuple[str, int]]) -> list[RunStatus]:
        self.asked.append([run_id for run_id, _ in runs])
        return [self.status(run_id, n) for run_id, n in runs]

    def notify_on_exit(self, callback: Callable[[str], None]) -> None:
        self.callbacks.append(callback)

    def signal(self, run_id: str, *, kill: bool) -> None:
        self.signals.append((run_id, kill))

    def read_log(self, run_id: str, task_index: int, offset: int, limit: int) -> tuple[bytes, int]:
        return run_id.encode(), offset + len(run_id)


def _run(run_id: str, pool: str, *nodes: str) -> RunRecord:
    placement = tuple(TaskPlacement(n, (0,), 1000) for n in nodes)
    return RunRecord(run_id, 1, RunPhase.RUNNING, "H100", placement, 0.0, executor=pool)


def _task(run_id: str) -> TaskLaunch:
    return TaskLaunch(run_id, 1, 0, 1, TaskPlacement("ws"), Launch(("true",)), None)


@pytest.fixture
def pools() -> tuple[ExecutorRegistry, Recording, Recording]:
    local = Recording([Node("ws", "H100", 2, 8000, 16384)], "nvml")
    slurm = Recording([Node("c1", "H100", 8, 64000, 65536), Node("c2", "H100", 8, 64000, 65536)])
    return ExecutorRegistry({"local": local, "slurm:gpu": slurm}), local, slurm


def test_nodes_are_stamped_with_their_pool(
    pools: tuple[ExecutorRegistry, Recording, Recording],
) -> None:
    registry, _, _ = pools
    assert {n.pool for n in registry.inventory("slurm:gpu")} == {"slurm:gpu"}
    assert [n.pool for n in registry.inventory("local")] == ["local"]
    assert registry.inventory_source() == "local: nvml, slurm:gpu: declared"


def test_runs_go_to_the_executor_of_their_pool(
    pools: tuple[ExecutorRegistry, Recording, Recording],
) -> None:
    registry, local, slurm = pools
    nodes = {n.name: n for p in registry.pools for n in registry.inventory(p)}
    placement = _run("r", "", "c1", "c2").placement
    assert registry.pool_of(placement, nodes) == "slurm:gpu"
    registry.signal(_run("r1", "slurm:gpu", "c1"), kill=True)
    registry.launch(_run("r2", "local", "ws"), [_task("r2")])
    assert slurm.signals == [("r1", True)]
    assert (local.launched, slurm.launched) == (["r2"], [])
    assert registry.read_log(_run("r3", "slurm:gpu", "c1"), 0, 0, 10) == (b"r3", 2)
    found = registry.statuses(
        [_run("a", "local", "ws"), _run("b", "slurm:gpu", "c1"), _run("c", "slurm:gpu", "c2")]
    )
    assert set(found) == {"a", "b", "c"}
    assert (local.asked, slurm.asked) == ([["a"]], [["b", "c"]])


def test_a_placement_must_name_known_nodes_of_one_pool(
    pools: tuple[ExecutorRegistry, Recording, Recording],
) -> None:
    registry, _, _ = pools
    nodes = {n.name: n for p in registry.pools for n in registry.inventory(p)}
    with pytest.raises(ValueError, match="spans pools"):
        registry.pool_of(_run("r", "", "ws", "c1").placement, nodes)
    with pytest.raises(UnknownPoolError, match="node gone is in no pool"):
        registry.pool_of(_run("r", "", "gone").placement, nodes)
    with pytest.raises(UnknownPoolError, match="no executor for pool 'ray'"):
        registry.status(_run("r", "ray", "ws"))


def test_exit_pushes_from_every_pool_reach_the_subscriber(
    pools: tuple[ExecutorRegistry, Recording, Recording],
) -> None:
    registry, local, slurm = pools
    heard: list[str] = []
    registry.notify_on_exit(heard.append)
    local.callbacks[0]("x")
    slurm.callbacks[0]("y")
    assert heard == ["x", "y"]


def test_one_executor_is_the_local_pool() -> None:
    single = Recording([])
    registry = ExecutorRegistry.of(single)
    assert registry.pools == ("local",)
    assert ExecutorRegistry.of(registry) is registry
    with pytest.raises(ValueError, match="at least one executor"):
        ExecutorRegistry({})
