"""Throughput-aware placement: which flavor a job should prefer, by how fast it runs there.

Gavel (Narayanan et al., OSDI'20) gives each job the accelerator where its throughput,
normalised by what other jobs get there, is highest; it solves an LP each round. A scheduling
cycle here must take milliseconds at thousands of nodes, so allot keeps Gavel's measure and
drops the solver: each job ranks the flavors it accepts by its **comparative advantage**,
``speed_on(flavor) / norm(flavor)``, where ``norm`` is the mean speed of the current workload
on that flavor. A job that gains more than most from a fast flavor ranks it first; one that
gains little ranks the slower flavor first and leaves the fast one to those who gain more. The
cycle then falls back along that ranking as it does along a user's list (work-conserving:
a job never waits while a flavor it accepts has room). Fairness is untouched: the order in
which jobs are admitted is the policy's, only the flavor each gets changes.

Keeping fast GPUs for the jobs that gain most only pays while such jobs wait: a job whose
advantage ranks a slower flavor first still takes its fastest flavor when that flavor's free
GPUs exceed what waiting jobs of higher advantage there ask for (``reserve``, set by the
driver from the pending jobs each cycle; ``reserve_by_flavor``). So an idle fast GPU is never
passed over for a slow one.

Only jobs that accept any flavor, or list flavors of equal standing (``flavor_order`` False),
are ranked: a user's own order of preference always wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from allot.core.model import JobSpec


def speed_norms(specs: Iterable[JobSpec], flavors: Sequence[str]) -> dict[str, float]:
    """The mean speed of ``specs`` on each of ``flavors`` (1.0 for a flavor without jobs)."""
    totals = dict.fromkeys(flavors, 0.0)
    count = 0
    for spec in specs:
        count += 1
        for flavor in flavors:
            totals[flavor] += spec.speed_on(flavor)
    return {f: (t / count if count else 1.0) for f, t in totals.items()}


def workload_norms(specs: Iterable[JobSpec], flavors: Sequence[str]) -> dict[str, float] | None:
    """``speed_norms`` of ``specs`` when some job gives speeds, else None (flavor-blind)."""
    specs = list(specs)
    if not any(s.speeds for s in specs):
        return None
    return speed_norms(specs, flavors)


def advantage(spec: JobSpec, flavor: str, norms: dict[str, float]) -> float:
    """``spec``'s speed on ``flavor`` relative to the workload's there."""
    return spec.speed_on(flavor) / norms.get(flavor, 1.0)


def rank_flavors(
    spec: JobSpec,
    flavors: tuple[str, ...],
    norms: dict[str, float] | None,
    free: dict[str, int] | None = None,
    reserve: dict[str, int] | None = None,
) -> tuple[str, ...]:
    """``flavors`` in the order ``spec`` should try them: by comparative advantage (ties keep
    the given order) for a job without an order of its own, else as given. With ``free`` (free
    milli-GPU per flavor), the job's fastest flavor goes first when its free GPUs less the
    ``reserve`` held for jobs that gain more there still hold the job."""
    if norms is None or (spec.flavors and spec.flavor_order) or len(flavors) < 2:
        return flavors
    ranked = sorted(flavors, key=lambda f: -advantage(spec, f, norms))
    fastest = max(flavors, key=spec.speed_on)
    if free is not None and ranked[0] != fastest:
        spare = free.get(fastest, 0) - (reserve or {}).get(fastest, 0)
        if spare >= spec.total.gpu_milli:
            ranked.remove(fastest)
            ranked.insert(0, fastest)
    return tuple(ranked)


def reserve_by_flavor(
    pending: Iterable[JobSpec], flavors: Sequence[str], norms: dict[str, float]
) -> dict[str, int]:
    """Milli-GPU that waiting jobs ask for on the flavor where their advantage is above the
    workload's (>= 1): what a job of lower advantage should leave free there."""
    reserve = dict.fromkeys(flavors, 0)
    for spec in pending:
        for flavor in flavors:
            if (not spec.flavors or flavor in spec.flavors) and advantage(
                spec, flavor, norms
            ) > 1.0:
                reserve[flavor] += spec.total.gpu_milli
    return reserve


def advantage_groups(
    spec: JobSpec, flavors: Sequence[str], norms: dict[str, float] | None
) -> list[list[str]]:
    """``flavors`` grouped by equal comparative advantage, best first (one group without
    norms): a packer chooses freely within a group, never across."""
    if norms is None:
        return [list(flavors)] if flavors else []
    groups: dict[float, list[str]] = {}
    for flavor in flavors:
        groups.setdefault(round(advantage(spec, flavor, norms), 9), []).append(flavor)
    return [groups[k] for k in sorted(groups, reverse=True)]
