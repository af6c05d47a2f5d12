"""Profiling end to end against a real ``allot up`` (SQLite, the local executor, real
processes): a small transformer submitted with ``--profile`` trains on the CPU, its trace is
collected into the task's directory, ``allot profile`` analyses it, ``allot node check``
records the node's measured figures (which then give the CPU run its roofline), and
``allot recommend`` ranks the catalog's flavors and records their step times."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from allot.cli.main import app
from live_server import LiveServer, allot_up

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "profile" / "train_tiny.py"

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with allot_up(tmp_path_factory.mktemp("server"), gpus=0) as live:
        yield live


@pytest.fixture(autouse=True)
def env(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOT_DATA_DIR", str(server.data_dir))
    monkeypatch.setenv("ALLOT_URL", server.url)
    monkeypatch.delenv("ALLOT_TOKEN", raising=False)


def allot(*args: str | int | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def _finished(job_id: int) -> dict[str, object]:
    deadline = time.monotonic() + 240
    while True:
        job: dict[str, object] = json.loads(ok(allot("show", job_id, "-o", "json")))["job"]
        if job["state"] not in ("pending", "running"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} did not finish"
        time.sleep(0.5)


def test_a_profiled_job_is_analysed_checked_and_recommended(tmp_path: Path) -> None:
    plain = ok(allot("submit", "--parsable", "--", "true")).strip()
    out = ok(allot("submit", "--parsable", "--name", "tiny", "--profile-steps", "3", "--",
                   "python", EXAMPLE, "--steps", "16"))  # fmt: skip
    job_id = int(out)
    shown = json.loads(ok(allot("show", job_id, "-o", "json")))["job"]
    assert shown["profile"] == {"steps": 3, "skip": 3}
    assert _finished(job_id)["state"] == "succeeded", ok(allot("logs", job_id))
    _finished(int(plain))

    refused = allot("profile", plain)
    assert refused.exit_code != 0
    assert "was not profiled: submit it with allot submit --profile" in refused.output

    # Before a node check the CPU has no peak figures: the report says so.
    report = json.loads(ok(allot("profile", job_id, "-o", "json")))
    assert report["traces"] == 1
    assert report["ranks"][0]["steps"] == 3
    assert report["ranks"][0]["device"] == "cpu"
    assert report["total_steps"] == 16
    assert report["roofline"] is None
    assert "allot node check" in report["roofline_missing"]
    assert report["bottleneck"]["headline"]

    node = json.loads(ok(allot("nodes", "-o", "json")))[0]["name"]
    checked = allot("node", "check", "--quick", "--node", node)
    assert checked.exit_code == 0, checked.output
    assert "nothing to compare with: cpu is not in the catalog" in checked.stdout
    listed = json.loads(ok(allot("nodes", "-o", "json")))[0]
    assert listed["check"]["healthy"] is None
    assert {r["name"] for r in listed["check"]["results"]} >= {"gemm_fp32", "memory"}
    assert "recorded" in ok(allot("nodes"))

    plot = tmp_path / "roofline.png"
    text = ok(allot("profile", job_id, "--plot", plot))
    assert "(measured) (allot node check of" in text
    assert "MFU" in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    rec = json.loads(ok(allot("recommend", job_id, "--steps", "1000", "-o", "json")))
    assert rec["job_class"] == "tiny"
    assert rec["steps"] == 1000
    assert rec["gpus"] == 1
    flavors = {e["flavor"]: e for e in rec["estimates"]}
    assert {"H100-SXM", "A100-80G", "L4", "T4"} <= set(flavors)
    assert all(e["basis"] == "estimated" for e in rec["estimates"])
    assert any("profiled on the CPU" in a for a in rec["assumptions"])
    assert rec["recorded"] == len(rec["estimates"]) + 1  # the CPU measured, the rest estimated
    table = ok(allot("recommend", job_id))
    assert "STEPS/$" in table
    assert "assumptions:" in table
