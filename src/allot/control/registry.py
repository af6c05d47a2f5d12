"""The executor registry: one ``Executor`` per node pool (the local machine, a Slurm partition,
a Ray cluster), and the routing of every run to the executor of its pool, as httpx routes a
request to a transport by its ``mounts``.

Rules:
- a pool's nodes are what its executor reports, stamped with the pool's name
  (``Node.pool``); the core keeps a gang within one pool, so a placement names one pool;
- a run records its pool (``RunRecord.executor``) when it begins, and every later call about
  it (status, signals, logs) goes to that pool's executor, also after a restart;
- exits are pushed: each executor tells the registry's subscriber the run id of every run
  whose task ended (``Executor.notify_on_exit``); ``statuses`` asks each executor once for a
  batch of runs, the safety net for anything a push missed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from allot.control.ports import Executor, ProfileSource, RunStatus, TaskLaunch
from allot.control.records import RunRecord
from allot.core.model import Node, TaskPlacement

LOCAL = "local"  # the pool of the machine ``allot up`` runs on


class UnknownPoolError(LookupError):
    """A run or placement names a pool no executor serves."""


class ExecutorRegistry:
    """Executors by pool name (see the module docstring)."""

    def __init__(self, executors: Mapping[str, Executor]) -> None:
        if not executors:
            raise ValueError("executors: at least one executor is needed")
        self._executors = dict(executors)
        self._pool_of_node: dict[str, str] = {}

    @classmethod
    def of(cls, executor: Executor | ExecutorRegistry) -> ExecutorRegistry:
        """``executor`` as the registry of the one pool ``local`` (a registry stays itself)."""
        if isinstance(executor, ExecutorRegistry):
            return executor
        return cls({LOCAL: executor})

    @property
    def pools(self) -> tuple[str, ...]:
        """The pool names, in the order they were registered."""
        return tuple(self._executors)

    def executor(self, pool: str) -> Executor:
        """The executor of ``pool``; raises UnknownPoolError."""
        try:
            return self._executors[pool]
        except KeyError:
            known = ", ".join(self._executors)
            raise UnknownPoolError(f"no executor for pool {pool!r}; pools: {known}") from None

    # -- inventory
    def inventory(self, pool: str) -> list[Node]:
        """What ``pool``'s executor reports, each node stamped with the pool."""
        nodes = [replace(n, pool=pool) for n in self.executor(pool).inventory()]
        for node in nodes:
            self._pool_of_node[node.name] = pool
        return nodes

    def inventory_source(self) -> str:
        """How the GPUs were found: the sources of every pool, ``pool: source`` when several."""
        if len(self._executors) == 1:
            return next(iter(self._executors.values())).inventory_source()
        return ", ".join(f"{p}: {e.inventory_source()}" for p, e in self._executors.items())

    def gpu_sharing(self) -> str:
        """How shares of one GPU are enforced: ``mps``, ``unenforced``, or empty where an
        executor does not say (its engine's business), ``pool: mode`` when several."""
        modes = {
            p: str(getattr(e, "gpu_sharing", lambda: "")()) for p, e in self._executors.items()
        }
        if len(modes) == 1:
            return next(iter(modes.values()))
        return ", ".join(f"{p}: {m}" for p, m in modes.items() if m)

    def pool_of(self, placement: Sequence[TaskPlacement], nodes: Mapping[str, Node]) -> str:
        """The one pool ``placement``'s nodes are in; raises UnknownPoolError for a node of no
        known pool and ValueError for a placement that spans pools."""
        where = ", ".join(p.node for p in placement)
        pools: set[str] = set()
        for p in placement:
            node = nodes.get(p.node)
            if node is None or node.pool not in self._executors:
                raise UnknownPoolError(f"placement on {where}: node {p.node} is in no pool")
            pools.add(node.pool)
        if len(pools) != 1:
            raise ValueError(f"placement on {where} spans pools {sorted(pools)}; a run needs one")
        return pools.pop()

    # -- runs
    def launch(self, run: RunRecord, tasks: Sequence[TaskLaunch]) -> None:
        """Start ``run``'s tasks on its pool's executor (idempotent per run id)."""
        self.executor(run.executor).launch(tasks)

    def status(self, run: RunRecord) -> RunStatus:
        """What ``run``'s executor knows about it now."""
        return self.executor(run.executor).status(run.run_id, len(run.placement))

    def statuses(self, runs: Sequence[RunRecord]) -> dict[str, RunStatus]:
        """The status of each run, asked of each executor once for its runs."""
        by_pool: dict[str, list[RunRecord]] = {}
        for run in runs:
            by_pool.setdefault(run.executor, []).append(run)
        found: dict[str, RunStatus] = {}
        for pool, members in by_pool.items():
            batch = self.executor(pool).statuses([(r.run_id, len(r.placement)) for r in members])
            found.update((s.run_id, s) for s in batch)
        return found

    def signal(self, run: RunRecord, *, kill: bool) -> None:
        """SIGTERM (or SIGKILL) every task of ``run``."""
        self.executor(run.executor).signal(run.run_id, kill=kill)

    def read_log(
        self, run: RunRecord, task_index: int, offset: int, limit: int
    ) -> tuple[bytes, int]:
        """Bytes of a task's output from ``offset``; returns (data, next offset)."""
        return self.executor(run.executor).read_log(run.run_id, task_index, offset, limit)

    def profile_dir(self, run: RunRecord, task_index: int) -> Path | None:
        """Where a profiled task of ``run`` left its traces (None: its executor keeps none)."""
        executor = self.executor(run.executor)
        if isinstance(executor, ProfileSource):
            return executor.profile_dir(run.run_id, task_index)
        return None

    def notify_on_exit(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(run_id)`` whenever a task of a run ends, in any pool."""
        for executor in self._executors.values():
            executor.notify_on_exit(callback)
