"""Scheduling policies: an ordering of pending jobs, what happens when a job does not fit, and
whether jobs may preempt.

A ``Policy`` is a value. Blocking rules:
- STRICT: stop at the first job that does not fit; everything behind it waits (strict FIFO).
  With the DRS criterion this is per queue, as Kueue's StrictFIFO. A head that could fit
  only on nodes that are down or drained right now is not a head that "does not fit yet": the
  screen phase sets it aside, explained as nodes unavailable (``NODES_UNAVAILABLE``), and the
  jobs behind it are considered as usual. Blocking on it would idle the whole up cluster for
  as long as a repair or a drain lasts, with no start it could bring closer; it is screened
  again each cycle and takes its turn once its nodes are back.
- BEST_EFFORT: skip a job that does not fit and try the next (Kueue's BestEffortFIFO).
- BACKFILL: EASY backfill (Lifka 1995; Mu'alem & Feitelson 2001): reserve the earliest start
  for the first job that does not fit, then start later jobs only when they cannot delay that
  reservation, judged by their estimate (else time limit).

``preemption`` names the strategies a job that does not fit may use to take the place of
running jobs: within its queue by priority, reclaim of borrowed quota, fair share between
queues of a cohort (each further governed by the queue's own rules), and 2D-LAS levels.

The named presets are what ``allot simulate --policy`` accepts.

``allot``, the default, keeps quotas, fair share between queues and the queues' preemption
rules as they are, and within them orders and preempts to shorten completion times with what
a live system knows (no runtimes; estimates or time limits when given). Chosen by measurement
(``benchmarks/sim_philly.py``, ``docs/policies.md``): on the Philly trace on 384 GPUs with no
estimates, least attained service with preemption (Tiresias' 2D-LAS) cut the mean JCT of
best-effort FIFO (``kueue``) and of fair share with backfill (``fairshare``, which without
estimates cannot reserve and waits behind its head) about eightfold, while ordering by size
alone (fewest GPUs first, no preemption) gained only 15 %. Within a LAS level the job
expected to need the least GPU-time goes first (fewest GPUs when no runtime is known), which
is the Tiresias order plus a size tie-break; decayed usage breaks the remaining ties. Best
effort, not backfill: without estimates a reservation cannot be made and EASY backfill would
wait behind the head. With quotas configured the queues' rules alone preempt
(``allot.core.preemption.finder.effective_strategies``).

LAS preemption under ``allot`` is narrower than Tiresias' (``las_margin``,
``las_min_run_seconds``, ``las_checkpointed_only``; ``allot.core.preemption.las.LasRule``): a
victim must be two levels above the preemptor (a new job takes the place of one that has had
10 GPU-hours, not 1), must have run half an hour since it last started (a checkpoint to resume
from; no trading places back and forth), and must be able to checkpoint (else it would lose
its whole run). Each preemption costs the victim its work since the last checkpoint, its
restart and its wait, and it pays off only against a victim expected to run much longer than
the preemptor, which under heavy-tailed runtimes is one that has run much longer already.
Measured against Tiresias' rule (one level, no quantum), on jobs this rule was not tuned on:
Philly jobs 20,000-24,000 on 384 GPUs, mean JCT equal (2.05 h against ``las``' 2.04 h) with
half the preemptions; the synthetic workload on 64 GPUs, 1.23 h against 1.31 h with half the
lost GPU-hours (1.23-1.62 h over four seeds, 1-4 % above ``kueue``); and where jobs
cannot checkpoint (the synthetic workload as generated) 1.23 h against ``las``' 2.93 h. On
the first 4,000 Philly jobs: 10.98 h against 11.53 h on 384 GPUs, 13.00 h against 14.15 h on
256. Not taken: a
victim no larger than the preemptor (better on the synthetic workload, 1.21 h, worse on
Philly, 11.30 h against 10.98 h, with three times the preemptions).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from allot.core.policy.ordering import Criterion
from allot.core.preemption import Strategy

DEFAULT_LAS_THRESHOLDS = (3_600.0, 36_000.0)  # GPU-seconds: 1 and 10 GPU-hours
# A run ``allot`` keeps from LAS preemption: half an hour, a usual checkpoint period, so the
# victim has a checkpoint to resume from and two jobs do not trade places back and forth.
ALLOT_RUN_QUANTUM = 1_800.0


class Blocking(StrEnum):
    """What the cycle does after a job that does not fit."""

    STRICT = "strict"
    BEST_EFFORT = "best_effort"
    BACKFILL = "backfill"


@dataclass(frozen=True, slots=True)
class Policy:
    """How one cycle walks the pending jobs."""

    name: str
    order: tuple[Criterion, ...] = ()
    blocking: Blocking = Blocking.STRICT
    description: str = ""
    preemption: frozenset[Strategy] = frozenset()
    las_thresholds: tuple[float, ...] = DEFAULT_LAS_THRESHOLDS
    # What keeps a running job from LAS preemption (``allot.core.preemption.las.LasRule``):
    # levels it must be above the preemptor, seconds its run is safe, whether only jobs that
    # can checkpoint are victims.
    las_margin: int = 1
    las_min_run_seconds: float = 0.0
    las_checkpointed_only: bool = False
    grace_seconds: float = 30.0  # for victims in queues without preemption rules

    @property
    def queue_fair(self) -> bool:
        """True when queues are ordered by dominant resource share (KEP-1714)."""
        return Criterion.DRS in self.order


_C = Criterion
_QUEUE_RULES = frozenset(
    {Strategy.WITHIN_QUEUE, Strategy.RECLAIM, Strategy.BORROW_WITHIN_COHORT, Strategy.FAIR_SHARE}
)
POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("fifo", (), Blocking.STRICT, "strict FIFO: the head blocks the queue"),
        Policy("besteffort", (), Blocking.BEST_EFFORT, "FIFO that skips a job that does not fit"),
        Policy("priority", (_C.PRIORITY,), Blocking.BEST_EFFORT, "highest priority first"),
        Policy("sjf", (_C.SJF,), Blocking.BEST_EFFORT, "shortest expected runtime first"),
        Policy(
            "backfill",
            (),
            Blocking.BACKFILL,
            "EASY backfill: reserve for the head, fill holes that do not delay it",
        ),
        Policy(
            "las",
            (_C.LAS,),
            Blocking.BEST_EFFORT,
            "Tiresias 2D-LAS: least attained GPU-time first, preempting more-served jobs",
            preemption=frozenset({Strategy.LAS}),
        ),
        Policy(
            "fairshare",
            (_C.USAGE, _C.PRIORITY),
            Blocking.BACKFILL,
            "Slurm-like: decayed-usage fair share, then priority, with backfill; no preemption",
        ),
        Policy(
            "kueue",
            (_C.DRS, _C.PRIORITY),
            Blocking.BEST_EFFORT,
            "Kueue-like: quotas with borrowing, dominant-resource-share order, reclaim and "
            "fair-share preemption",
            preemption=_QUEUE_RULES,
        ),
        Policy(
            "allot",
            (_C.DRS, _C.PRIORITY, _C.LAS, _C.WORK, _C.USAGE),
            Blocking.BEST_EFFORT,
            "quotas with borrowing, guaranteed quota first, then priority, least attained "
            "service (2D-LAS levels), least expected GPU-time, decayed usage; preemption by "
            "the queues' rules and by LAS level (two levels up, after 30 min of a run, only "
            "jobs that checkpoint)",
            preemption=_QUEUE_RULES | {Strategy.LAS},
            las_margin=2,
            las_min_run_seconds=ALLOT_RUN_QUANTUM,
            las_checkpointed_only=True,
        ),
    )
}


class UnknownPolicyError(ValueError):
    """A policy name that is not one of ``POLICIES``."""


def get_policy(name: str) -> Policy:
    """The preset called ``name``; raises ``UnknownPolicyError`` listing the known names."""
    try:
        return POLICIES[name]
    except KeyError:
        known = ", ".join(POLICIES)
        raise UnknownPolicyError(
            f"policy: unknown policy {name!r}; known policies: {known}"
        ) from None


__all__ = ["POLICIES", "Blocking", "Criterion", "Policy", "UnknownPolicyError", "get_policy"]
