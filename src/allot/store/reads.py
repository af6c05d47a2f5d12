"""Reading stored rows back as control records, in bulk (a fixed number of queries however
many jobs are read).

JSON shapes (written by ``jobs.py`` and ``runs.py`` through the encoders here):
- ``jobs.tasks``: ``[{"gpu_milli": int, "cpu_milli": int, "memory_mib": int}, ...]``, one per task,
  with ``"gpu_memory_mib": int`` (per device) in a task that asks for GPU memory;
- ``jobs.placement``: ``{"flavor_order": bool, "speeds": {flavor: float}, "colocate": str,
  "colocate_required": bool}`` (keys left out take their defaults) or NULL for the defaults;
- ``jobs.flavors``, ``jobs.argv``: lists of strings; ``jobs.env``: an object of strings;
- ``jobs.profile``: ``{"steps": int, "skip": int}`` or NULL for a job not profiled;
- ``jobs.dependencies``: ``[{"job": int, "condition": "ok"|"failed"|"any"}, ...]`` or NULL
  for none (the same as the job's ``job_dependencies`` rows);
- ``allocations.devices``: a list of device indices.

``jobs.tasks`` and the ``tasks`` rows hold the same tasks; the store's own reads (job records,
starting and ending runs) decode the JSON column, which comes with the job's row at no extra
query, and the rows are there for SQL over tasks (reports, joins with allocations).

Invariant: a ``JobRecord`` carries its current run (``current_run_id``) with the placement
rebuilt from the run's allocations in task order; jobs without a current run carry None.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, select

from allot.control.records import (
    Condition,
    Dependency,
    JobRecord,
    Launch,
    NewJob,
    ProfileRequest,
    RunPhase,
    RunRecord,
    StopCause,
)
from allot.core.model import JobState, Resources, TaskPlacement
from allot.store.tables import AllocationRow, JobRow, RunRow

RUNS = RunRow.__table__
ALLOCATIONS = AllocationRow.__table__

# SQLite allows 32,766 bound parameters per statement; stay well below it.
_IN_CHUNK = 500


def tasks_json(tasks: Sequence[Resources]) -> list[dict[str, int]]:
    """The JSON form of a job's tasks (``gpu_memory_mib`` only when asked for)."""
    out = []
    for t in tasks:
        item = {"gpu_milli": t.gpu_milli, "cpu_milli": t.cpu_milli, "memory_mib": t.memory_mib}
        if t.gpu_memory_mib:
            item["gpu_memory_mib"] = t.gpu_memory_mib
        out.append(item)
    return out


def placement_json(job: NewJob) -> dict[str, Any] | None:
    """The JSON form of a job's placement options (``jobs.placement``); None for the
    defaults, so jobs that set none store nothing."""
    data: dict[str, Any] = {}
    if not job.flavor_order:
        data["flavor_order"] = False
    if job.speeds:
        data["speeds"] = dict(job.speeds)
    if job.colocate:
        data["colocate"] = job.colocate
        data["colocate_required"] = job.colocate_required
    return data or None


def placement_from_json(data: dict[str, Any] | None) -> dict[str, Any]:
    """``NewJob`` keyword arguments from ``jobs.placement``."""
    if not data:
        return {}
    return {
        "flavor_order": bool(data.get("flavor_order", True)),
        "speeds": tuple((str(f), float(v)) for f, v in data.get("speeds", {}).items()),
        "colocate": str(data.get("colocate", "")),
        "colocate_required": bool(data.get("colocate_required", False)),
    }


def tasks_from_json(
    data: Iterable[Any], shapes: dict[tuple[int, int, int, int], Resources]
) -> tuple[Resources, ...]:
    """Tasks from their JSON form; ``shapes`` shares one ``Resources`` value per distinct shape
    across a bulk read (most jobs ask for one of a few shapes)."""
    tasks = []
    for item in data:
        key = (
            item["gpu_milli"],
            item["cpu_milli"],
            item["memory_mib"],
            item.get("gpu_memory_mib", 0),
        )
        shape = shapes.get(key)
        if shape is None:
            shape = shapes[key] = Resources(*key)
        tasks.append(shape)
    return tuple(tasks)


def dependencies_json(after: Sequence[Dependency]) -> list[dict[str, Any]] | None:
    """The JSON form of a job's dependencies (None for none)."""
    if not after:
        return None
    return [{"job": d.job_id, "condition": d.condition.value} for d in after]


_CONDITIONS = {c.value: c for c in Condition}


def profile_json(request: ProfileRequest | None) -> dict[str, int] | None:
    """The JSON form of a job's profiling request (None: not profiled)."""
    return None if request is None else {"steps": request.steps, "skip": request.skip}


def profile_from_json(data: Any) -> ProfileRequest | None:
    """A profiling request from its JSON form (NULL: not profiled)."""
    return None if not data else ProfileRequest(int(data["steps"]), int(data["skip"]))


def dependencies_from_json(data: Iterable[Any] | None) -> tuple[Dependency, ...]:
    """Dependencies from their JSON form (NULL: none)."""
    if not data:
        return ()
    return tuple(Dependency(item["job"], _CONDITIONS[item["condition"]]) for item in data)


# The columns a job record is built from, in the order ``job_record`` unpacks them.
JOB_COLUMNS = (
    JobRow.id,
    JobRow.name,
    JobRow.tenant,
    JobRow.user,
    JobRow.queue,
    JobRow.priority,
    JobRow.tasks,
    JobRow.flavors,
    JobRow.argv,
    JobRow.workdir,
    JobRow.env,
    JobRow.runtime_estimate,
    JobRow.time_limit,
    JobRow.checkpointable,
    JobRow.preemptible,
    JobRow.held,
    JobRow.state,
    JobRow.submit_time,
    JobRow.start_time,
    JobRow.end_time,
    JobRow.exit_code,
    JobRow.reason,
    JobRow.attained_service,
    JobRow.run_count,
    JobRow.array_id,
    JobRow.dependencies,
    JobRow.profile,
    JobRow.placement,
    JobRow.current_run_id,
)
_CURRENT_RUN = len(JOB_COLUMNS) - 1
_STATES = {state.value: state for state in JobState}


def select_jobs() -> Select[Any]:
    """A query for the columns of ``JOB_COLUMNS``, to refine with where and order by."""
    return select(*JOB_COLUMNS)


def job_record(
    row: Sequence[Any],
    run: RunRecord | None,
    shapes: dict[tuple[int, int, int, int], Resources] | None = None,
) -> JobRecord:
    """A job record from a row of ``JOB_COLUMNS`` and its current run."""
    # Positional unpacking: bulk reads build thousands of records, and named access to
    # every column of every row costs more than building the records.
    (
        job_id,
        name,
        tenant,
        user,
        queue,
        priority,
        tasks,
        flavors,
        argv,
        workdir,
        env,
        runtime_estimate,
        time_limit,
        checkpointable,
        preemptible,
        held,
        state,
        submit_time,
        start_time,
        end_time,
        exit_code,
        reason,
        attained_service,
        run_count,
        array_id,
        dependencies,
        profile,
        placement,
        _current_run_id,
    ) = row
    job = NewJob(
        name,
        tenant,
        user,
        queue,
        tasks_from_json(tasks, {} if shapes is None else shapes),
        Launch(tuple(argv), workdir, env, profile_from_json(profile)),
        priority,
        tuple(flavors),
        runtime_estimate,
        time_limit,
        checkpointable,
        preemptible,
        held,
        dependencies_from_json(dependencies),
        **placement_from_json(placement),
    )
    return JobRecord(
        job_id,
        job,
        _STATES[state],
        submit_time,
        held,
        start_time,
        end_time,
        exit_code,
        reason,
        attained_service,
        run_count,
        run,
        array_id,
    )


def run_record(row: Row[Any], allocations: Sequence[Row[Any]]) -> RunRecord:
    """A run record from a full ``runs`` row and its ``allocations`` rows in task order."""
    placement = tuple(
        TaskPlacement(a.node, tuple(a.devices), a.gpu_milli_per_device) for a in allocations
    )
    ended = row.phase == RunPhase.ENDED.value
    return RunRecord(
        run_id=row.run_id,
        job_id=row.job_id,
        phase=RunPhase(row.phase),
        flavor=row.flavor,
        placement=placement,
        started_at=row.started_at,
        stop_by=row.stop_by,
        stop_cause=None if row.stop_cause is None else StopCause(row.stop_cause),
        stop_reason=row.stop_reason,
        ended_at=row.ended_at,
        exit_code=row.exit_code,
        exit_codes=tuple(a.exit_code for a in allocations) if ended else (),
        executor=row.executor,
    )


def allocations_by_run(rows: Iterable[Row[Any]]) -> dict[str, list[Row[Any]]]:
    """``allocations`` rows (sorted by run id and task index) grouped by run id."""
    found: dict[str, list[Row[Any]]] = {}
    for row in rows:
        found.setdefault(row.run_id, []).append(row)
    return found


# Built once (the loop reads the running jobs' runs every cycle); the ids bind as a list.
_ALLOCATIONS_OF = (
    select(ALLOCATIONS)
    .where(AllocationRow.run_id.in_(bindparam("run_ids", expanding=True)))
    .order_by(AllocationRow.run_id, AllocationRow.task_index)
)
_RUNS_OF = select(RUNS).where(RunRow.run_id.in_(bindparam("run_ids", expanding=True)))


def runs_by_id(conn: Connection, run_ids: Sequence[str]) -> dict[str, RunRecord]:
    """The runs with these ids, with their placements (two queries per 500 ids)."""
    found: dict[str, RunRecord] = {}
    for start in range(0, len(run_ids), _IN_CHUNK):
        chunk = {"run_ids": list(run_ids[start : start + _IN_CHUNK])}
        placed = allocations_by_run(conn.execute(_ALLOCATIONS_OF, chunk))
        for row in conn.execute(_RUNS_OF, chunk):
            found[row.run_id] = run_record(row, placed.get(row.run_id, ()))
    return found


def job_records(conn: Connection, rows: Sequence[Row[Any]]) -> list[JobRecord]:
    """Job records from rows of ``JOB_COLUMNS``, their current runs loaded in bulk."""
    current = [row[_CURRENT_RUN] for row in rows if row[_CURRENT_RUN] is not None]
    runs = runs_by_id(conn, current) if current else {}
    shapes: dict[tuple[int, int, int, int], Resources] = {}
    return [job_record(row, runs.get(row[_CURRENT_RUN]), shapes) for row in rows]


def job_record_by_id(conn: Connection, job_id: int) -> JobRecord | None:
    """The job with its current run, or None."""
    row = conn.execute(select_jobs().where(JobRow.id == job_id)).one_or_none()
    if row is None:
        return None
    return job_records(conn, [row])[0]
