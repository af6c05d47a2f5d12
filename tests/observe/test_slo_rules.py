"""The SLO rule files and dashboard under ``ops/``: what ``allot.observe.slo`` generates, valid
for ``promtool check rules``, the burn-rate alerts passing ``promtool test rules``, and every
metric they read one that allot exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from allot.observe import slo
from allot.observe.eta import StartTimeEstimator
from allot.observe.metrics import ControlMetrics
from allot.observe.telemetry import GpuTelemetry
from harness import make_harness

OPS = Path(__file__).resolve().parents[2] / "ops"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed"
)


def test_the_shipped_files_are_what_the_objectives_generate() -> None:
    for relative, text in slo.shipped().items():
        assert (OPS / relative).read_text() == text, (
            f"ops/{relative} is stale: run python -m allot.observe.slo ops"
        )


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    assert PROMTOOL is not None
    result = subprocess.run([PROMTOOL, "check", "rules", str(OPS / slo.RULES_FILE)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 44 rules found" in result.stdout


@needs_promtool
def test_the_burn_rate_alerts_fire_on_a_fast_burn_and_not_on_a_slow_one() -> None:
    assert PROMTOOL is not None
    result = subprocess.run([PROMTOOL, "test", "rules", slo.RULES_TEST_FILE.name],
                            capture_output=True, text=True, check=False,
                            cwd=OPS / slo.RULES_TEST_FILE.parent)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_objective_pages_and_tickets_on_the_workbooks_windows() -> None:
    rules = yaml.safe_load((OPS / slo.RULES_FILE).read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) == 4 * len(slo.OBJECTIVES)
    windows = {(a["labels"]["severity"], a["labels"]["window"]) for a in alerts}
    assert windows == {("page", "1h"), ("page", "6h"), ("ticket", "1d"), ("ticket", "3d")}


def exported_names() -> set[str]:
    """Every series name allot exports, with the suffixes Prometheus adds."""
    harness = make_harness()
    metrics = ControlMetrics(harness.store, harness.clock, cache_seconds=0)
    from allot.control.loop import SchedulingLoop
    from allot.core.policy import get_policy

    loop = SchedulingLoop(harness.store, harness.executor, harness.clock, get_policy("allot"))
    metrics.add(StartTimeEstimator(loop))
    metrics.add(GpuTelemetry.off("no GPU in this test"))
    metrics.observe_request("GET", "get_job", 200, 0.01)
    metrics.launch_seconds_of("local", 0.01)
    text = metrics.exposition().decode()
    names = set()
    suffixes = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("_total",)}
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            _, _, name, kind = line.split()
            names |= {name, *(name + suffix for suffix in suffixes.get(kind, ()))}
    return names


def test_every_metric_the_rules_and_dashboard_read_is_exported() -> None:
    known = exported_names()
    recorded = {f"allot:slo_{o.name}:error_ratio_rate{w}" for o in slo.OBJECTIVES
                for w in slo.WINDOWS}  # fmt: skip
    texts = [(OPS / slo.RULES_FILE).read_text()]
    dashboard = json.loads((OPS / slo.DASHBOARD_FILE).read_text())
    texts += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for text in texts for name in re.findall(r"\ballot[a-z0-9_:]*[a-z0-9]", text)}
    used -= {"allot"}
    missing = used - known - recorded
    assert not missing, f"read but never exported: {sorted(missing)}"
