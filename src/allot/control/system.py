"""The composition of the control plane: ``build(config, store=, executors=, clock=)`` wires a
store, the executors of each node pool and a clock into the scheduling loop and the use cases.
The server (``allot up``), the tests and the benchmarks all compose the system here, so they
run the same wiring; only what they pass in differs (SQLite or PostgreSQL, local processes or
an engine, the wall clock or a virtual one).

``build`` syncs each pool's inventory into the store, so submissions can be checked against
the cluster at once; it does not start the loop's thread (``System.start`` does, after
reconciling whatever a previous process left running).
"""

from __future__ import annotations

from dataclasses import dataclass

from allot.control.audit import SchedulingAudit
from allot.control.loop import SchedulingLoop
from allot.control.metering import Metering, MeteringConfig
from allot.control.ports import Clock, Executor, Store
from allot.control.registry import ExecutorRegistry
from allot.control.services import ControlPlane
from allot.control.workdirs import WorkdirRule
from allot.core.policy import get_policy


@dataclass(frozen=True, slots=True)
class SystemConfig:
    """How the loop runs: the policy by name, seconds between cycles at the latest
    (``interval``, also the period of the full status poll) and at the earliest (``min_gap``),
    the grace period of stopped runs, and how often inventories are synced."""

    policy: str = "allot"
    interval: float = 1.0
    min_gap: float = 0.02
    grace_seconds: float = 30.0
    inventory_interval: float = 30.0


@dataclass(slots=True)
class System:
    """A composed control plane."""

    store: Store
    executors: ExecutorRegistry
    clock: Clock
    loop: SchedulingLoop
    control: ControlPlane

    def start(self) -> None:
        """Reconcile, then run cycles in the background."""
        self.loop.start()

    def close(self) -> None:
        """Stop the loop's thread (running jobs keep running), then write what the audit
        trail holds."""
        self.loop.close()
        self.control.audit.close()


def build(
    config: SystemConfig,
    *,
    store: Store,
    executors: ExecutorRegistry | Executor,
    clock: Clock,
    workdirs: WorkdirRule | None = None,
    metering: MeteringConfig | None = None,
) -> System:
    """Wire the system (see the module docstring); raises UnknownPolicyError. The scheduler's
    decisions go to the control plane's audit trail; ``workdirs`` says where jobs may run;
    ``metering`` gives prices, budgets (checked at admission) and how idle cost is reported."""
    registry = ExecutorRegistry.of(executors)
    loop = SchedulingLoop(
        store,
        registry,
        clock,
        get_policy(config.policy),
        interval=config.interval,
        min_gap=config.min_gap,
        grace_seconds=config.grace_seconds,
        inventory_interval=config.inventory_interval,
    )
    loop.sync_inventory()
    control = ControlPlane(store, registry, clock, loop, workdirs=workdirs)
    control.metering = Metering(store, clock, metering)
    loop.admission = control.metering.admission
    loop.prices = control.metering.prices
    loop.subscribe(SchedulingAudit(control.audit))
    return System(store, registry, clock, loop, control)
