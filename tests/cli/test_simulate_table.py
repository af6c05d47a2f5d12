"""The comparison table ``allot simulate`` prints: every policy and metric, human units, and
the best value of a ranked row in bold."""

from __future__ import annotations

from rich.console import Console

from allot.cli.simulate_table import comparison_table
from allot.sim.metrics import Distribution, Metrics, compute_metrics
from allot.sim.result import SimResult


def render(metrics: dict[str, Metrics]) -> str:
    console = Console(record=True, width=160)
    console.print(comparison_table(metrics, title="Policies on the sample trace"))
    return console.export_text()


def two_policies() -> dict[str, Metrics]:
    return {
        "fifo": Metrics(
            jobs=4, completed=3, timed_out=1, unfinished=1, preemptions=0, failure_restarts=2
        ),
        "backfill": Metrics(
            jobs=4, completed=4, timed_out=0, unfinished=0, preemptions=1, failure_restarts=1
        ),
    }


def cells(metrics: dict[str, Metrics], label: str) -> list[str]:
    table = comparison_table(metrics, title="t")
    row = list(table.columns[0].cells).index(label)
    return [str(list(column.cells)[row]) for column in table.columns[1:]]


def test_table_shows_every_policy_and_metric() -> None:
    text = render(two_policies())
    assert "Policies on the sample trace" in text
    for expected in ("fifo", "backfill", "JCT p99", "Queueing delay mean", "Bounded slowdown p95"):
        assert expected in text
    for expected in ("Makespan", "GPU allocation", "Jain's index", "Never fit", "Lost GPU-hours"):
        assert expected in text
    for expected in ("Timed out", "Failure restarts", "Preemptions"):
        assert expected in text


def test_timeouts_and_failure_restarts_have_rows_of_their_own() -> None:
    metrics = two_policies()
    assert cells(metrics, "Timed out") == ["1", "0"]
    assert cells(metrics, "Failure restarts") == ["2", "1"]


def test_the_best_value_of_a_ranked_row_is_bold() -> None:
    metrics = two_policies()
    assert cells(metrics, "Jobs completed") == ["3", "[bold]4[/bold]"]
    assert cells(metrics, "Preemptions") == ["[bold]0[/bold]", "1"]
    # Failure restarts follow from the failure draws, not the policy: not ranked.
    assert "[bold]" not in "".join(cells(metrics, "Failure restarts"))


def test_table_uses_human_units() -> None:
    text = render(
        {
            "short": Metrics(jct_s=Distribution(mean=42.0, median=2100.0, p95=4320.0, p99=None)),
            "long": Metrics(makespan_s=3.5 * 86_400, gpu_allocation_fraction=0.723),
        }
    )
    for expected in ("42 s", "35 min", "1.2 h", "3.5 d", "72.3 %", "—"):
        assert expected in text


def test_table_of_empty_metrics_renders() -> None:
    text = render({"fifo": compute_metrics(SimResult(policy="fifo", cluster_gpus=8))})
    assert "fifo" in text
