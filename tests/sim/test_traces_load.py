"""load_trace: one entry point for every trace format."""

from __future__ import annotations

from pathlib import Path

import pytest

from allot.sim.traces import TRACE_FORMATS, load_trace
from allot.sim.workload import TraceError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_known_formats() -> None:
    assert TRACE_FORMATS == ("philly", "alibaba2023", "allot", "synthetic")


def test_unknown_format_lists_the_known_ones() -> None:
    with pytest.raises(TraceError) as err:
        load_trace(EXAMPLES / "trace-small.csv", "slurm")
    message = str(err.value)
    assert "field 'format': unknown trace format 'slurm'" in message
    assert "known: philly, alibaba2023, allot, synthetic" in message


@pytest.mark.parametrize("fmt", TRACE_FORMATS)
def test_missing_file(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(TraceError, match=r"absent: no such file"):
        load_trace(tmp_path / "absent", fmt)


def test_dispatch_to_allot_and_synthetic() -> None:
    assert len(load_trace(EXAMPLES / "trace-small.csv", "allot", limit=5)) == 5
    assert len(load_trace(EXAMPLES / "synthetic.yaml", "synthetic", limit=7)) == 7


@pytest.mark.traces
def test_dispatch_to_public_traces(traces_dir: Path) -> None:
    philly = load_trace(traces_dir / "philly" / "philly-2017-09-10.csv", "philly", limit=10)
    assert [j.spec.id for j in philly] == list(range(1, 11))
    pods = traces_dir / "alibaba2023" / "openb_pod_list_default.csv"
    assert len(load_trace(pods, "alibaba2023", limit=10)) == 10
