"""Job dependencies: when a job that waits for others (``NewJob.after``) may start, when it
never can, and how both read to users.

A dependency names a job, or an array by its id (then every member counts), and a
``Condition`` on how it ended, as Slurm's ``--dependency`` does: ``ok`` is afterok, ``failed``
is afternotok (any end but success: failed or cancelled), ``any`` is afterany. Several
dependencies must all hold (Slurm's ``,``). An array ended once every member has; it succeeded
when every member succeeded, and failed as soon as one member ended without success.

Verdicts (``judge``) depend only on ended jobs, whose state never changes again, so:
- ``MET`` is final: a job found eligible stays eligible, and starting it needs no further check;
- ``NEVER`` is final too: the loop ends such a job (cancelled, with the reason
  ``dependency never satisfied: job 12 failed``) instead of leaving it pending for ever.

Pure: no I/O; the store supplies ``DependencyProgress`` for the jobs named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from allot.control.records import Condition, Dependency, DependencyProgress
from allot.core.model import JobState

DEPENDENCY = "dependency"  # the reason code of a job waiting for its dependencies
NEVER_SATISFIED = "dependency never satisfied"

# Slurm's names for the conditions, shown in remedies and accepted nowhere else.
SLURM_NAMES = {Condition.OK: "afterok", Condition.FAILED: "afternotok", Condition.ANY: "afterany"}


class Verdict(StrEnum):
    """Where one dependency stands."""

    WAITING = "waiting"  # what it names has not ended (or, for an array, not every member)
    MET = "met"
    NEVER = "never"  # it ended in a way the condition excludes


def judge(dependency: Dependency, progress: DependencyProgress | None) -> Verdict:
    """The verdict on ``dependency`` given what the jobs it names have done (None: not read
    yet, which only waits)."""
    if progress is None or progress.members == 0:
        return Verdict.WAITING
    all_ended = progress.ended == progress.members
    condition = dependency.condition
    if condition is Condition.OK:
        if progress.unsuccessful:
            return Verdict.NEVER
        return Verdict.MET if all_ended else Verdict.WAITING
    if not all_ended:
        return Verdict.WAITING
    if condition is Condition.FAILED and not progress.unsuccessful:
        return Verdict.NEVER
    return Verdict.MET


@dataclass(frozen=True, slots=True)
class DependencyWait:
    """Why a pending job may not start yet: the first of its dependencies not met, how far
    what it names has got, and every job or array it still waits for."""

    dependency: Dependency
    progress: DependencyProgress | None
    waiting_for: tuple[int, ...]

    @property
    def message(self) -> str:
        """``waits for job 12 to succeed``, ``waits for every job of array 20 to end (3 of
        10 have ended)``; further unmet dependencies are counted."""
        text = waiting_message(self.dependency, self.progress)
        more = len(self.waiting_for) - 1
        if more > 0:
            text += f", and for {more} more " + ("dependency" if more == 1 else "dependencies")
        return text

    @property
    def remedy(self) -> str:
        """When it starts, and what would end it instead."""
        what = _subject(self.dependency, self.progress)
        condition = self.dependency.condition
        if condition is Condition.OK:
            return f"starts once {what} has succeeded; ended if it fails or is cancelled"
        if condition is Condition.FAILED:
            return f"starts once {what} has failed or been cancelled; ended if it succeeds"
        return f"starts once {what} has ended, however it ends"

    @property
    def fields(self) -> dict[str, object]:
        """Structured form for scripts: the job or array named, the condition, progress."""
        fields: dict[str, object] = {
            "after": self.dependency.job_id,
            "condition": str(self.dependency.condition),
            "waiting_for": list(self.waiting_for),
        }
        if self.progress is not None:
            fields.update(
                array=self.progress.array,
                members=self.progress.members,
                ended=self.progress.ended,
            )
        return fields


@dataclass(frozen=True, slots=True)
class Judgement:
    """Whether a job may start: ``eligible``; else ``never`` (the reason it never can) or
    ``wait`` (why not yet)."""

    eligible: bool
    wait: DependencyWait | None = None
    never: str | None = None


ELIGIBLE = Judgement(True)


def judge_job(after: Sequence[Dependency], progress: Mapping[int, DependencyProgress]) -> Judgement:
    """The judgement on a job's dependencies: never as soon as one never holds, eligible when
    all are met, otherwise waiting for the first unmet one."""
    unmet: list[Dependency] = []
    for dependency in after:
        found = progress.get(dependency.job_id)
        verdict = judge(dependency, found)
        if verdict is Verdict.NEVER:
            assert found is not None
            return Judgement(False, never=never_reason(dependency, found))
        if verdict is Verdict.WAITING:
            unmet.append(dependency)
    if not unmet:
        return ELIGIBLE
    first = unmet[0]
    ids = tuple(dict.fromkeys(d.job_id for d in unmet))
    return Judgement(False, wait=DependencyWait(first, progress.get(first.job_id), ids))


def _subject(dependency: Dependency, progress: DependencyProgress | None) -> str:
    if progress is not None and progress.array:
        return f"every job of array {dependency.job_id}"
    return f"job {dependency.job_id}"


def waiting_message(dependency: Dependency, progress: DependencyProgress | None) -> str:
    """One sentence: what the job waits for."""
    subject = _subject(dependency, progress)
    condition = dependency.condition
    if progress is not None and progress.array:
        done = f" ({progress.ended} of {progress.members} have ended)"
        if condition is Condition.OK:
            return f"waits for {subject} to succeed{done}"
        if condition is Condition.FAILED:
            return f"waits for {subject} to end, at least one without success{done}"
        return f"waits for {subject} to end{done}"
    if condition is Condition.OK:
        return f"waits for {subject} to succeed"
    if condition is Condition.FAILED:
        return f"waits for {subject} to fail or be cancelled"
    return f"waits for {subject} to end"


def _ended(state: JobState) -> str:
    return "was cancelled" if state is JobState.CANCELLED else str(state)


def never_reason(dependency: Dependency, progress: DependencyProgress) -> str:
    """Why ``dependency`` can never hold: ``dependency never satisfied: job 12 failed``."""
    what = _why_never(dependency, progress)
    return f"{NEVER_SATISFIED}: {what}"


def _why_never(dependency: Dependency, progress: DependencyProgress) -> str:
    name = dependency.job_id
    if dependency.condition is Condition.FAILED:
        if progress.array:
            return f"every job of array {name} succeeded"
        return f"job {name} succeeded"
    member, state = progress.first_unsuccessful or (name, JobState.FAILED)
    if progress.array:
        return f"array {name}: job {member} {_ended(state)}"
    return f"job {name} {_ended(state)}"


def never_at_submit(dependency: Dependency, progress: DependencyProgress) -> str | None:
    """The rule a new job's dependency breaks when it can already never hold, in words, or
    None."""
    if judge(dependency, progress) is not Verdict.NEVER:
        return None
    condition = dependency.condition
    return (
        f"{_why_never(dependency, progress)}, so '{condition}' "
        f"({SLURM_NAMES[condition]}) can never hold"
    )


def problem_at_submit(
    after: Sequence[Dependency], progress: Mapping[int, DependencyProgress], joins: int | None
) -> tuple[str, str] | None:
    """The field and rule of the first problem with a new job's dependencies: a job named
    twice or not at all, the array the job joins (it would wait for itself), or a dependency
    that can already never hold. ``joins``: the array the job is added to, if any."""
    seen: set[int] = set()
    for index, dependency in enumerate(after):
        name = dependency.job_id
        field = f"after[{index}]"
        if name in seen:
            return f"{field}.job", f"names job {name} twice"
        seen.add(name)
        found = progress.get(name)
        if found is None:
            return f"{field}.job", f"job {name} does not exist"
        if name == joins:
            return (
                f"{field}.job",
                f"names array {name}, which this job joins: it would wait for itself",
            )
        never = never_at_submit(dependency, found)
        if never is not None:
            return field, never
    return None
