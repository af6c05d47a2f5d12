"""allot trace format: defaults, CSV and Parquet round trips, and located errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from allot.core.model import JobSpec, Resources
from allot.sim.traces.allot_format import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    read_allot_trace,
    write_allot_trace,
)
from allot.sim.workload import TraceError, TraceJob

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_fill_optional_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "submit_time,duration,num_tasks,gpu_milli_per_task\n10,60,1,500\n0,30.5,2,8000\n",
    )
    jobs = read_allot_trace(path)
    assert [j.spec.id for j in jobs] == [2, 1]  # ids follow rows; jobs follow submit time
    second = jobs[1].spec
    assert second == JobSpec(
        id=1,
        tenant="default",
        user="default",
        queue="default",
        tasks=(Resources(500, 1000, 4096),),
        submit_time=10.0,
    )
    assert jobs[0].spec.tasks == (Resources(8000, 1000, 4096),) * 2
    assert jobs[0].duration == 30.5


def test_user_and_queue_default_to_the_tenant_and_empty_cells_take_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "submit_time,duration,num_tasks,gpu_milli_per_task,tenant,user,queue,priority,flavors,"
        "checkpointable,runtime_estimate\n"
        "0,60,1,1000,nlp,,,,,,\n"
        "1,60,1,1000,nlp,bo,batch,-1,A100|H100,TRUE,90\n",
    )
    first, second = read_allot_trace(path)
    assert (first.spec.user, first.spec.queue, first.spec.priority) == ("nlp", "nlp", 0)
    assert first.spec.flavors == ()
    assert first.spec.checkpointable is False
    assert first.spec.runtime_estimate is None
    assert (second.spec.user, second.spec.queue, second.spec.priority) == ("bo", "batch", -1)
    assert second.spec.flavors == ("A100", "H100")
    assert second.spec.checkpointable is True
    assert second.spec.runtime_estimate == 90.0


def sample_jobs() -> list[TraceJob]:
    return [
        TraceJob(
            JobSpec(
                id=7,
                tenant="vision",
                user="ana",
                queue="vision-hi",
                tasks=(Resources(8000, 32000, 262144),) * 2,
                flavors=("H100", "A100"),
                priority=3,
                submit_time=0.25,
                runtime_estimate=3600.0,
                time_limit=7200.5,
                name="train, big",
                checkpointable=True,
                preemptible=False,
            ),
            3599.125,
        ),
        TraceJob(
            JobSpec(
                id=3,
                tenant="nlp",
                user="bo",
                queue="nlp",
                tasks=(Resources(250, 500, 1024),),
                submit_time=12.0,
            ),
            1e-3,
        ),
    ]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"trace{suffix}"
    jobs = sample_jobs()
    write_allot_trace(jobs, path)
    assert read_allot_trace(path) == jobs
    assert read_allot_trace(path, limit=1) == jobs[:1]
    assert not list(tmp_path.glob("*.partial"))


def test_writer_rejects_what_the_format_cannot_hold(tmp_path: Path) -> None:
    mixed = TraceJob(
        JobSpec(
            id=1,
            tenant="t",
            user="u",
            queue="q",
            tasks=(Resources(1000, 1, 1), Resources(2000, 1, 1)),
        ),
        1.0,
    )
    path = tmp_path / "out.csv"
    with pytest.raises(ValueError, match="job 1: tasks differ"):
        write_allot_trace([mixed], path)
    assert not path.exists()
    with pytest.raises(ValueError, match=r"must end in \.csv or \.parquet"):
        write_allot_trace(sample_jobs(), tmp_path / "out.json")


def test_every_documented_column_is_written(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_allot_trace(sample_jobs(), path)
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert sorted(header) == sorted((*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS))


HEADER = (
    "submit_time,duration,num_tasks,gpu_milli_per_task,job_id,flavors,checkpointable,time_limit"
)
GOOD_ROW = "0,60,1,1000,1,,false,"


@pytest.mark.parametrize(
    ("row", "field", "rule"),
    [
        ("-1,60,1,1000,2,,false,", "submit_time", "must be >= 0 seconds"),
        ("x,60,1,1000,2,,false,", "submit_time", "must be a finite number"),
        (",60,1,1000,2,,false,", "submit_time", "is required"),
        ("0,0,1,1000,2,,false,", "duration", "must be > 0 seconds"),
        ("0,nan,1,1000,2,,false,", "duration", "must be a finite number"),
        ("0,inf,1,1000,2,,false,", "duration", "finite"),
        ("0,60,0,1000,2,,false,", "num_tasks", "must be >= 1"),
        ("0,60,1.5,1000,2,,false,", "num_tasks", "must be a whole number"),
        ("0,60,1,1500,2,,false,", "gpu_milli_per_task", "a multiple of 1000"),
        ("0,60,1,-1,2,,false,", "gpu_milli_per_task", "must be >= 0"),
        ("0,60,1,1000,1,,false,", "job_id", "job id 1 is already used on line 2"),
        ("0,60,1,1000,0,,false,", "job_id", "must be >= 1"),
        ("0,60,1,1000,2,A||B,false,", "flavors", "separated by '|'"),
        ("0,60,1,1000,2,A|A,false,", "flavors", "lists a flavor twice"),
        ("0,60,1,1000,2,,maybe,", "checkpointable", "must be true or false"),
        ("0,60,1,1000,2,,false,-5", "time_limit", "must be > 0 seconds when given"),
    ],
)
def test_csv_errors_name_file_line_and_field(
    tmp_path: Path, row: str, field: str, rule: str
) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD_ROW}\n{row}\n")
    with pytest.raises(TraceError) as err:
        read_allot_trace(path)
    message = str(err.value)
    assert message.startswith(f"{path}:3: field '{field}':"), message
    assert rule in message


def test_header_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "submit_time,duration,num_tasks,gpu_milli_per_task,gpus\n")
    with pytest.raises(TraceError, match=r"trace.csv:1: field 'gpus': unknown column; allowed: "):
        read_allot_trace(path)
    path = write(tmp_path, "submit_time,duration,num_tasks\n")
    with pytest.raises(
        TraceError, match=r"trace.csv:1: field 'gpu_milli_per_task': required column"
    ):
        read_allot_trace(path)
    path = write(tmp_path, "submit_time,duration,num_tasks,gpu_milli_per_task,name,name\n")
    with pytest.raises(TraceError, match=r"trace.csv:1: field 'name': the column appears twice"):
        read_allot_trace(path)
    path = write(tmp_path, "")
    with pytest.raises(TraceError, match=r"trace.csv:1: the file is empty"):
        read_allot_trace(path)
    path = write(tmp_path, f"{HEADER}\n0,60\n")
    with pytest.raises(TraceError, match=r"trace.csv:2: has 2 fields but the header has 8"):
        read_allot_trace(path)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"absent.csv: no such file"):
        read_allot_trace(tmp_path / "absent.csv")
    with pytest.raises(TraceError, match=r"t.json: must end in .csv or .parquet"):
        read_allot_trace(write(tmp_path, "{}", name="t.json"))
    with pytest.raises(TraceError, match=r"t.parquet: cannot read as Parquet"):
        read_allot_trace(write(tmp_path, "not parquet", name="t.parquet"))


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table = pa.table(
        {
            "submit_time": [0.0, 1.0, 2.0],
            "duration": [60.0, 60.0, -5.0],
            "num_tasks": [1, 1, 1],
            "gpu_milli_per_task": [1000, 1000, 1000],
        }
    )
    pq.write_table(table, path)
    with pytest.raises(TraceError) as err:
        read_allot_trace(path)
    assert str(err.value).startswith(f"{path} row 3: field 'duration': must be > 0 seconds")
    pq.write_table(table.append_column("colour", pa.array(["r", "g", "b"])), path)
    with pytest.raises(TraceError, match=r"t.parquet: field 'colour': unknown column"):
        read_allot_trace(path)


def test_parquet_accepts_nulls_and_float_integers(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table = pa.table(
        {
            "submit_time": [0.0, 1.0],
            "duration": [60.0, 60.0],
            "num_tasks": [1.0, 2.0],
            "gpu_milli_per_task": [1000, 500],
            "time_limit": [None, 90.0],
            "tenant": [None, "a"],
        }
    )
    pq.write_table(table, path)
    first, second = read_allot_trace(path)
    assert first.spec.time_limit is None
    assert first.spec.tenant == "default"
    assert len(second.spec.tasks) == 2
    assert second.spec.time_limit == 90.0


def test_example_trace() -> None:
    jobs = read_allot_trace(EXAMPLES / "trace-small.csv")
    assert len(jobs) == 20
    assert [j.spec.id for j in jobs] == list(range(1, 21))
    assert len({j.spec.tenant for j in jobs}) >= 3
    assert sum(j.spec.is_gang for j in jobs) == 1
    assert any(j.spec.tasks[0].is_fractional for j in jobs)
