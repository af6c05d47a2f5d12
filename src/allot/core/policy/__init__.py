"""Scheduling policies: an ordering of pending jobs plus what happens when a job does not fit.

A ``Policy`` is a value. Blocking rules:
- STRICT: stop at the first job that does not fit; everything behind it waits (strict FIFO).
- BEST_EFFORT: skip a job that does not fit and try the next (Kueue's BestEffortFIFO).
- BACKFILL: EASY backfill (Lifka 1995; Mu'alem & Feitelson 2001): reserve the earliest start
  for the first job that does not fit, then start later jobs only when they cannot delay that
  reservation, judged by their estimate (else time limit).

The named presets are what ``allot simulate --policy`` accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from allot.core.policy.ordering import Order, ordered


class Blocking(StrEnum):
    """What the cycle does after a job that does not fit."""

    STRICT = "strict"
    BEST_EFFORT = "best_effort"
    BACKFILL = "backfill"


@dataclass(frozen=True, slots=True)
class Policy:
    """How one cycle walks the pending jobs."""

    name: str
    order: Order = Order.FIFO
    blocking: Blocking = Blocking.STRICT
    description: str = ""


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("fifo", Order.FIFO, Blocking.STRICT, "strict FIFO: the head blocks the queue"),
        Policy(
            "besteffort",
            Order.FIFO,
            Blocking.BEST_EFFORT,
            "best-effort FIFO: skip a job that does not fit",
        ),
        Policy("priority", Order.PRIORITY, Blocking.BEST_EFFORT, "highest priority first"),
        Policy("sjf", Order.SJF, Blocking.BEST_EFFORT, "shortest expected runtime first"),
        Policy(
            "backfill",
            Order.FIFO,
            Blocking.BACKFILL,
            "EASY backfill: reserve for the head, fill holes that do not delay it",
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


__all__ = ["POLICIES", "Blocking", "Order", "Policy", "UnknownPolicyError", "get_policy", "ordered"]
