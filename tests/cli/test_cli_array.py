"""Job arrays: ``allot submit --array`` parses sbatch-style ranges and submits in batches."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from allot.api.app import create_app
from allot.cli import output
from allot.cli.jobfile import parse_array
from allot.cli.main import app
from allot.client import Client
from harness import InProcessTransport, make_harness

TOKEN = "tok-cli-array-0123456789"


@pytest.mark.parametrize(
    ("text", "indices"),
    [("0-3", [0, 1, 2, 3]), ("0-6:3", [0, 3, 6]), ("1,3,5", [1, 3, 5]), ("0-1,7", [0, 1, 7])],
)
def test_ranges(text: str, indices: list[int]) -> None:
    assert parse_array(text) == indices


@pytest.mark.parametrize(
    ("text", "rule"),
    [("a-b", "is not N, N-M"), ("5-2", "count up"), ("0-4:0", "step >= 1"), ("1,1", "twice")],
)
def test_bad_ranges(text: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        parse_array(text)


def test_an_array_submits_one_job_per_index(monkeypatch: pytest.MonkeyPatch) -> None:
    harness = make_harness(tokens={TOKEN: "alice"})
    transport = InProcessTransport(create_app(harness.control))
    monkeypatch.setattr(
        output,
        "make_client",
        lambda url, token: Client("http://allot.test", TOKEN, transport=transport),
    )
    result = CliRunner().invoke(app, ["submit", "--array", "0-4", "--name", "sweep", "--", "true"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Submitted array 1 of 5 jobs: 1-5\n"
    jobs = [harness.store.get_job(i) for i in range(1, 6)]
    assert [j.job.name for j in jobs] == [f"sweep[{i}]" for i in range(5)]
    assert [j.job.launch.env["ALLOT_ARRAY_INDEX"] for j in jobs] == ["0", "1", "2", "3", "4"]
    bad = CliRunner().invoke(app, ["submit", "--array", "3-1", "--", "true"])
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: --array:")
