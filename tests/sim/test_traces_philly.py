"""Philly reader: sorting, ids, gang shapes, and errors that name file, line and column."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from allot.core.model import Resources
from allot.sim.traces.philly import gang_shape, read_philly
from allot.sim.workload import TraceError

HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"


def write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "philly.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("gpus", "shape"),
    [
        (1, (1, 1)),
        (2, (1, 2)),
        (8, (1, 8)),
        (12, (3, 4)),
        (16, (2, 8)),
        (24, (3, 8)),
        (128, (16, 8)),
        (3, (3, 1)),
        (6, (3, 2)),
    ],
)
def test_gang_shape(gpus: int, shape: tuple[int, int]) -> None:
    assert gang_shape(gpus, 8) == shape


def test_gang_shape_respects_a_smaller_node() -> None:
    assert gang_shape(8, 4) == (2, 4)
    assert gang_shape(12, 2) == (6, 2)


def test_sorts_by_time_and_numbers_jobs_in_that_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "2017-10-01 00:10:00,100.0,1,100.0,b\n"
        "2017-10-01 00:00:00,50.0,12,600.0,a\n"
        "2017-10-01 00:10:00,70.0,2,140.0,c\n",
    )
    jobs = read_philly(path)
    assert [j.spec.id for j in jobs] == [1, 2, 3]
    assert [j.spec.tenant for j in jobs] == ["a", "b", "c"]  # ties keep file order
    assert [j.spec.submit_time for j in jobs] == [0.0, 600.0, 600.0]
    assert [j.duration for j in jobs] == [50.0, 100.0, 70.0]
    first = jobs[0].spec
    assert (first.tenant, first.user, first.queue) == ("a", "a", "a")
    assert first.tasks == (Resources(4000, 16000, 4 * 32768),) * 3
    assert first.runtime_estimate is None
    assert first.time_limit is None


def test_a_128_gpu_job_is_16_tasks_of_8(tmp_path: Path) -> None:
    jobs = read_philly(write(tmp_path, "2017-10-01 00:00:00,60,128,7680,a\n"))
    assert jobs[0].spec.tasks == (Resources(8000, 32000, 8 * 32768),) * 16


def test_options_and_limit(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "2017-10-01 00:10:00,100.0,16,1600.0,b\n2017-10-01 00:00:00,50.0,1,50.0,a\n",
    )
    jobs = read_philly(
        path, limit=1, max_gpus_per_task=4, cpu_milli_per_gpu=1000, memory_mib_per_gpu=1024
    )
    assert len(jobs) == 1
    assert jobs[0].spec.tenant == "a"
    jobs = read_philly(path, max_gpus_per_task=4, cpu_milli_per_gpu=1000, memory_mib_per_gpu=1024)
    assert jobs[1].spec.tasks == (Resources(4000, 4000, 4096),) * 4
    assert read_philly(path, limit=0) == []


@pytest.mark.parametrize(
    ("body", "line", "field", "rule"),
    [
        (
            "2017-10-01 00:00:00,50.0,1,50.0,a\nyesterday,1,1,1,a\n",
            3,
            "timestamp",
            "must be a time",
        ),
        ("2017-10-01 00:00:00,abc,1,50.0,a\n", 2, "duration", "must be a number of seconds"),
        ("2017-10-01 00:00:00,0,1,0,a\n", 2, "duration", "must be > 0 seconds"),
        ("2017-10-01 00:00:00,-5,1,0,a\n", 2, "duration", "must be > 0 seconds"),
        ("2017-10-01 00:00:00,5,0,0,a\n", 2, "num_gpus", "must be >= 1"),
        ("2017-10-01 00:00:00,5,1.5,0,a\n", 2, "num_gpus", "must be a whole number"),
        ("2017-10-01 00:00:00,5,x,0,a\n", 2, "num_gpus", "must be a whole number"),
        ("2017-10-01 00:00:00,5,1,5,\n", 2, "cluster", "must not be empty"),
        ("2017-10-01 00:00:00+02:00,5,1,5,a\n", 2, "timestamp", "time zone"),
    ],
)
def test_row_errors_name_file_line_and_field(
    tmp_path: Path, body: str, line: int, field: str, rule: str
) -> None:
    path = write(tmp_path, body)
    with pytest.raises(TraceError) as err:
        read_philly(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: field '{field}':"), message
    assert rule in message


def test_missing_column_is_reported_on_the_header(tmp_path: Path) -> None:
    path = write(
        tmp_path, "2017-10-01 00:00:00,5,5,a\n", header="timestamp,duration,gpu_time,cluster\n"
    )
    with pytest.raises(
        TraceError, match=r"philly.csv:1: field 'num_gpus': missing column\(s\) num_gpus"
    ):
        read_philly(path)


def test_short_row_and_empty_or_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, "2017-10-01 00:00:00,5,1,5,a\n2017-10-01 00:00:00,5,1\n")
    with pytest.raises(TraceError, match=r"philly.csv:3: has 3 fields but the header has 5"):
        read_philly(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(TraceError, match=r"philly.csv:1: the file is empty"):
        read_philly(path)
    with pytest.raises(TraceError, match=r"absent.csv: no such file"):
        read_philly(tmp_path / "absent.csv")


def test_header_only_gives_no_jobs(tmp_path: Path) -> None:
    assert read_philly(write(tmp_path, "")) == []


@pytest.mark.traces
def test_full_trace(traces_dir: Path) -> None:
    path = traces_dir / "philly" / "philly-2017-09-10.csv"
    jobs = read_philly(path)
    assert len(jobs) == 52_849
    assert [j.spec.id for j in jobs] == list(range(1, 52_850))
    times = [j.spec.submit_time for j in jobs]
    assert times[0] == 0.0
    assert times == sorted(times)
    assert len({j.spec.tenant for j in jobs}) == 12
    gpus = Counter(j.spec.total.gpu_milli // 1000 for j in jobs)
    assert gpus == {1: 50188, 2: 904, 4: 945, 8: 713, 12: 7, 16: 65, 24: 4, 32: 23}
    shapes = {(len(j.spec.tasks), j.spec.tasks[0].gpu_milli) for j in jobs}
    assert shapes == {
        (1, 1000),
        (1, 2000),
        (1, 4000),
        (1, 8000),
        (3, 4000),
        (2, 8000),
        (3, 8000),
        (4, 8000),
    }
    assert all(j.duration > 0 for j in jobs)
    assert read_philly(path, limit=100) == jobs[:100]
