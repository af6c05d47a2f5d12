"""The service-level objectives of allot, as data, and the Prometheus rules and Grafana
dashboard derived from them (shipped as files under ``ops/``; ``python -m allot.observe.slo
ops`` writes them again, and a test keeps the shipped files equal to what this writes).

Each objective is a ratio of bad events to all events over 30 days, read from the metrics of
``allot.observe.metrics``. Alerts follow the multi-window, multi-burn-rate method of the Google
SRE workbook ("Alerting on SLOs", table 5-8): page when the error budget burns 14.4 times too
fast over 1 h (confirmed over 5 min) or 6 times over 6 h (confirmed over 30 min); open a ticket
at 3 times over 1 d (2 h) or once over 3 d (6 h).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
# (severity, long window, short window, burn rate): the workbook's recommended table
BURNS = (
    ("page", "1h", "5m", 14.4),
    ("page", "6h", "30m", 6.0),
    ("ticket", "1d", "2h", 3.0),
    ("ticket", "3d", "6h", 1.0),
)


@dataclass(frozen=True, slots=True)
class Objective:
    """``target`` of events are good over 30 days; ``bad`` and ``total`` are PromQL with a
    ``{w}`` placeholder for the rate window."""

    name: str  # used in rule names: allot:slo_<name>:error_ratio_rate<w>
    title: str
    target: float
    bad: str
    total: str
    description: str

    @staticmethod
    def window(template: str, window: str) -> str:
        """``template`` over the rate window ``window``."""
        return template.replace("{w}", window)

    @property
    def budget(self) -> float:
        return round(1 - self.target, 6)


def _slower_than(histogram: str, bucket: str, selector: str = "") -> tuple[str, str]:
    inner = f"{selector}," if selector else ""
    total = f"sum(rate({histogram}_count{{{selector}}}[{{w}}]))"
    good = f'sum(rate({histogram}_bucket{{{inner}le="{bucket}"}}[{{w}}]))'
    return f"({total} - {good})", total


_API = 'handler!="scrape"'
_latency = _slower_than("allot_http_request_duration_seconds", "0.25", _API)
_start = _slower_than("allot_job_start_latency_seconds", "5.0")
_cycle = _slower_than("allot_scheduling_cycle_duration_seconds", "1.0")

OBJECTIVES = (
    Objective(
        "api_availability",
        "API availability",
        0.999,
        f'sum(rate(allot_http_requests_total{{{_API},code=~"5.."}}[{{w}}]))',
        f"sum(rate(allot_http_requests_total{{{_API}}}[{{w}}]))",
        "99.9% of API requests are answered without a server error (5xx).",
    ),
    Objective(
        "api_latency",
        "API latency",
        0.99,
        *_latency,
        "99% of API requests are answered within 250 ms.",
    ),
    Objective(
        "start_latency",
        "Submit to running on a free cluster",
        0.99,
        *_start,
        "99% of jobs that find room at once run within 5 s of their submission.",
    ),
    Objective(
        "cycle_time",
        "Scheduling-cycle time",
        0.99,
        *_cycle,
        "99% of scheduling cycles take under 1 s.",
    ),
)


def ratio_rule(objective: Objective, window: str) -> str:
    return f"allot:slo_{objective.name}:error_ratio_rate{window}"


def rules() -> dict[str, Any]:
    """The Prometheus rule file: recording rules per objective and window, then alerts."""
    recording = [
        {
            "name": f"allot-slo-{o.name}-recording",
            "rules": [
                {
                    "record": ratio_rule(o, w),
                    "expr": f"{o.window(o.bad, w)}\n/\n{o.window(o.total, w)}",
                    "labels": {"slo": o.name},
                }
                for w in WINDOWS
            ],
        }
        for o in OBJECTIVES
    ]
    alerts = [
        {"name": f"allot-slo-{o.name}-alerts", "rules": [_alert(o, *burn) for burn in BURNS]}
        for o in OBJECTIVES
    ]
    return {"groups": recording + alerts}


def _alert(o: Objective, severity: str, long: str, short: str, burn: float) -> dict[str, Any]:
    camel = "".join(part.title() for part in o.name.split("_"))
    threshold = f"({burn} * {o.budget})"
    return {
        "alert": f"Allot{camel}BudgetBurn",
        "expr": f"{ratio_rule(o, long)} > {threshold}\nand\n{ratio_rule(o, short)} > {threshold}",
        "for": "2m" if severity == "page" else "15m",
        "labels": {"severity": severity, "slo": o.name, "window": long},
        "annotations": {
            "summary": f"{o.title}: error budget burning {burn:g}x too fast over {long}"
            f" (and {short})",
            "description": f"Objective: {o.description} At this rate the 30-day budget"
            f" ({o.budget * 100:g}% bad) is gone in {30 / burn:.1f} days."
            " See docs/observability.md.",
        },
    }


def rules_tests() -> dict[str, Any]:
    """``promtool test rules`` cases: 5% of API requests failing for 70 minutes fires every
    availability alert; 0.05% fires none."""
    o = OBJECTIVES[0]
    ok = 'allot_http_requests_total{handler="get_job",method="GET",code="200"}'
    bad = 'allot_http_requests_total{handler="get_job",method="GET",code="500"}'
    expected = []
    for burn in BURNS:
        alert = _alert(o, *burn)
        expected.append({"exp_labels": alert["labels"], "exp_annotations": alert["annotations"]})
    alertname = _alert(o, *BURNS[0])["alert"]
    return {
        "rule_files": [RULES_FILE.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": ok, "values": "0+950x120"},
                    {"series": bad, "values": "0+50x120"},
                ],
                "alert_rule_test": [
                    {"eval_time": "70m", "alertname": alertname, "exp_alerts": expected}
                ],
            },
            {
                "interval": "1m",
                "input_series": [
                    {"series": ok, "values": "0+9995x120"},
                    {"series": bad, "values": "0+5x120"},
                ],
                "alert_rule_test": [{"eval_time": "70m", "alertname": alertname, "exp_alerts": []}],
            },
        ],
    }


def _panel(
    panel_id: int, title: str, exprs: list[tuple[str, str]], unit: str, x: int, y: int
) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(exprs)
        ],
    }


PANELS: tuple[tuple[str, list[tuple[str, str]], str], ...] = (
    (
        "Jobs by state",
        [("sum by (state) (allot_jobs)", "{{state}}")],
        "short",
    ),
    (
        "Pending jobs by reason",
        [("allot_pending_jobs_by_reason", "{{reason}}")],
        "short",
    ),
    (
        "GPUs allocated and free, per flavor",
        [("allot_gpus", "{{flavor}} {{status}}")],
        "short",
    ),
    (
        "Queue use vs nominal quota (GPUs)",
        [
            ("sum by (queue) (allot_queue_used_gpus)", "{{queue}} used"),
            ("sum by (queue) (allot_queue_nominal_gpus)", "{{queue}} nominal"),
            ("sum by (queue) (allot_queue_borrowed_gpus)", "{{queue}} borrowed"),
        ],
        "short",
    ),
    (
        "Scheduling cycle duration",
        [
            (
                "histogram_quantile(0.5, sum by (le) "
                "(rate(allot_scheduling_cycle_duration_seconds_bucket[5m])))",
                "p50",
            ),
            (
                "histogram_quantile(0.99, sum by (le) "
                "(rate(allot_scheduling_cycle_duration_seconds_bucket[5m])))",
                "p99",
            ),
        ],
        "s",
    ),
    (
        "Placements and preemptions per minute",
        [
            ("sum by (flavor) (rate(allot_placements_total[5m])) * 60", "placed {{flavor}}"),
            ("sum by (strategy) (rate(allot_preemptions_total[5m])) * 60", "{{strategy}}"),
        ],
        "short",
    ),
    (
        "Queue wait (p50, p90) per queue",
        [
            (
                "histogram_quantile(0.5, sum by (le, queue) "
                "(rate(allot_job_queue_wait_seconds_bucket[1h])))",
                "{{queue}} p50",
            ),
            (
                "histogram_quantile(0.9, sum by (le, queue) "
                "(rate(allot_job_queue_wait_seconds_bucket[1h])))",
                "{{queue}} p90",
            ),
        ],
        "s",
    ),
    (
        "Executor launch latency (p99)",
        [
            (
                "histogram_quantile(0.99, sum by (le, pool) "
                "(rate(allot_executor_launch_duration_seconds_bucket[5m])))",
                "{{pool}}",
            )
        ],
        "s",
    ),
    (
        "API requests per second, by code",
        [("sum by (code) (rate(allot_http_requests_total[5m]))", "{{code}}")],
        "reqps",
    ),
    (
        "API latency (p99) by handler",
        [
            (
                "histogram_quantile(0.99, sum by (le, handler) "
                "(rate(allot_http_request_duration_seconds_bucket[5m])))",
                "{{handler}}",
            )
        ],
        "s",
    ),
    (
        "GPU utilisation by node and GPU",
        [("allot_gpu_utilization_ratio", "{{node}}/{{gpu}}")],
        "percentunit",
    ),
    (
        "Start-time estimates",
        [
            ("allot_eta_pending_jobs", "{{estimate}}"),
            ("allot_eta_refresh_duration_seconds", "refresh seconds"),
        ],
        "short",
    ),
)


def dashboard() -> dict[str, Any]:
    """A Grafana dashboard: the cluster, the scheduler, the API, and each SLO's burn rate."""
    panels = [
        _panel(i + 1, title, exprs, unit, 12 * (i % 2), 8 * (i // 2))
        for i, (title, exprs, unit) in enumerate(PANELS)
    ]
    row = 8 * ((len(PANELS) + 1) // 2)
    for j, o in enumerate(OBJECTIVES):
        burn = [(f"{ratio_rule(o, w)} / {o.budget}", f"burn rate {w}") for w in ("5m", "1h", "6h")]
        title = f"SLO burn rate: {o.title} ({o.target * 100:g}%)"
        panels.append(
            _panel(len(panels) + 1, title, burn, "short", 12 * (j % 2), row + 8 * (j // 2))
        )
    return {
        "title": "allot",
        "uid": "allot-overview",
        "schemaVersion": 39,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["allot"],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                }
            ]
        },
        "panels": panels,
    }


RULES_FILE = Path("prometheus") / "allot-rules.yml"
RULES_TEST_FILE = Path("prometheus") / "allot-rules.test.yml"
DASHBOARD_FILE = Path("grafana") / "allot-dashboard.json"
HEADER = "# Generated by `python -m allot.observe.slo ops`; see docs/observability.md.\n"


class _Dumper(yaml.SafeDumper):
    """Writes multi-line expressions as literal blocks, as people write rule files."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def rules_text() -> str:
    return HEADER + yaml.dump(rules(), Dumper=_Dumper, sort_keys=False, width=100)


def dashboard_text() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def shipped() -> dict[Path, str]:
    """Each file under ``ops/`` and what it holds."""
    tests = HEADER + yaml.dump(rules_tests(), Dumper=_Dumper, sort_keys=False, width=100)
    return {RULES_FILE: rules_text(), RULES_TEST_FILE: tests, DASHBOARD_FILE: dashboard_text()}


def write(folder: Path) -> None:
    """Write the rule file and the dashboard under ``folder``."""
    for relative, text in shipped().items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "ops"))
