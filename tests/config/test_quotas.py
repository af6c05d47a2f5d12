"""Quota files: the example reads into the values the core expects; every bad value names the
file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from allot.config.errors import ConfigError
from allot.config.quotas import check_against_cluster, load_quotas, parse_quotas
from allot.core.quota.config import (
    BorrowWithinCohort,
    CohortSpec,
    PreemptionRules,
    QueueSpec,
    ReclaimWithinCohort,
    ResourceQuota,
    TenantSpec,
    WithinQueue,
)
from allot.core.quota.fair_share import FairShareUsage
from allot.core.quota.tree import QuotaTree
from allot.sim.cluster import load_cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
A100_GPU = ("A100-80G", "gpu")

# Lines are counted by the tests below: keep the layout when editing.
BASE = """\
tenants:
  - name: vision
queues:
  - name: train
    tenant: vision
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "quotas.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def expect_error(tmp_path: Path, text: str, line: int, field: str, *words: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_quotas(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: field {field!r}:"), message
    for word in words:
        assert word in message, message
    return caught.value


def test_the_example_reads_into_core_values() -> None:
    config = load_quotas(EXAMPLES / "quotas-small.yaml")
    assert config.usage_half_life == 168 * 3600.0
    assert config.priority_classes == {"high": 100, "normal": 0, "low": -10}
    assert config.tenants == (
        TenantSpec("vision", 4.0),
        TenantSpec("nlp", 3.0),
        TenantSpec("speech", 2.0),
        TenantSpec("research", 1.0),
    )
    assert config.cohorts == (CohortSpec("small"),)
    rules = PreemptionRules(WithinQueue.LOWER_PRIORITY, ReclaimWithinCohort.ANY, (), 30.0)
    nominal = {"vision": 25_600, "nlp": 19_200, "speech": 12_800, "research": 6_400}
    assert config.queues == tuple(
        QueueSpec(name, name, "small", {A100_GPU: ResourceQuota(milli)}, 1.0, rules)
        for name, milli in nominal.items()
    )
    assert sum(nominal.values()) == 64_000


def test_the_example_fits_the_small_cluster_and_the_synthetic_tenants() -> None:
    config = load_quotas(EXAMPLES / "quotas-small.yaml")
    cluster = load_cluster(EXAMPLES / "cluster-small.yaml").cluster
    flavors = {node.flavor for node in cluster.nodes}
    check_against_cluster(config, flavors, EXAMPLES / "quotas-small.yaml")
    assert cluster.total_gpus * 1000 == sum(
        q.quotas[A100_GPU].nominal for q in config.queues if q.quotas is not None
    )
    synthetic = (EXAMPLES / "synthetic.yaml").read_text(encoding="utf-8")
    for queue in config.queues:
        assert f"  {queue.tenant}: " in synthetic


def test_the_example_tree_admits_nominal_then_borrows_then_blocks() -> None:
    tree = QuotaTree(load_quotas(EXAMPLES / "quotas-small.yaml"))
    assert tree.block("research", {A100_GPU: 6_400}) is None
    tree.add("research", {A100_GPU: 6_400})
    assert tree.borrowing("research", A100_GPU) == 0
    # The other queues are idle, so research may borrow up to the rest of the cohort.
    assert tree.block("research", {A100_GPU: 57_600}) is None
    tree.add("research", {A100_GPU: 8_000})
    assert tree.borrowing("research", A100_GPU) == 8_000
    assert tree.within_nominal("vision", {A100_GPU: 25_600})
    block = tree.block("research", {A100_GPU: 49_601})
    assert block is not None
    assert (block.node, block.limit, block.available) == ("small", "cohort", 49_600)


def test_defaults_units_and_limits() -> None:
    config = parse_quotas(
        textwrap.dedent(
            """\
            tenants:
              - name: a
            cohorts:
              - name: root
                quotas:
                  H100: {gpu: 8}
              - name: org
                parent: root
            queues:
              - name: q
                tenant: a
                cohort: org
                weight: 2
                quotas:
                  H100:
                    gpu: {nominal: 0.5, borrowing_limit: 1.25, lending_limit: 0}
                    cpu: {nominal: 2.5, borrowing_limit: null}
                    memory_gib: 1.5
                  T4:
                    memory_mib: 100
              - name: free
                tenant: a
            """
        ),
        "inline",
    )
    assert config.usage_half_life == 168 * 3600.0
    assert config.priority_classes == {}
    assert config.tenants == (TenantSpec("a", 1.0),)
    assert config.cohorts == (
        CohortSpec("root", None, {("H100", "gpu"): ResourceQuota(8_000)}),
        CohortSpec("org", "root", {}),
    )
    queue, free = config.queues
    assert queue.weight == 2.0
    assert queue.quotas == {
        ("H100", "gpu"): ResourceQuota(500, 1_250, 0),
        ("H100", "cpu"): ResourceQuota(2_500),
        ("H100", "memory"): ResourceQuota(1_536),
        ("T4", "memory"): ResourceQuota(100),
    }
    assert queue.preemption == PreemptionRules()
    assert free == QueueSpec("free", "a")


# ---------------------------------------------------------------- errors


def test_unknown_key_lists_the_allowed_ones(tmp_path: Path) -> None:
    expect_error(
        tmp_path,
        BASE + "    quota: {}\n",
        6,
        "queues[0].quota",
        "unknown key",
        "allowed keys:",
        "quotas",
        "preemption",
    )


def test_negative_nominal(tmp_path: Path) -> None:
    expect_error(
        tmp_path,
        BASE + "    quotas:\n      A100-80G:\n        gpu: {nominal: -1}\n",
        8,
        "queues[0].quotas.A100-80G.gpu.nominal",
        ">= 0",
        "-1",
    )


def test_cohort_cycle(tmp_path: Path) -> None:
    text = """\
        tenants:
          - name: vision
        cohorts:
          - name: a
            parent: b
          - name: b
            parent: a
        queues:
          - name: train
            tenant: vision
        """
    expect_error(tmp_path, text, 5, "cohorts[0].parent", "cycle", "a -> b -> a")


def test_unknown_tenant(tmp_path: Path) -> None:
    text = BASE.replace("tenant: vision", "tenant: visoin")
    expect_error(tmp_path, text, 5, "queues[0].tenant", "unknown tenant 'visoin'")


def test_unknown_cohort_parent(tmp_path: Path) -> None:
    text = BASE + "cohorts:\n  - name: org\n    parent: missing\n"
    expect_error(tmp_path, text, 8, "cohorts[0].parent", "unknown cohort 'missing'")


def test_unknown_queue_cohort(tmp_path: Path) -> None:
    text = BASE + "    cohort: nowhere\n    quotas: {A100-80G: {gpu: 1}}\n"
    expect_error(tmp_path, text, 6, "queues[0].cohort", "unknown cohort 'nowhere'")


def test_both_memory_keys(tmp_path: Path) -> None:
    text = BASE + (
        "    quotas:\n      A100-80G:\n        memory_gib: 1\n        memory_mib: 1024\n"
    )
    expect_error(
        tmp_path,
        text,
        9,
        "queues[0].quotas.A100-80G.memory_mib",
        "either memory_gib or memory_mib",
    )


def test_fractional_milli_gpu(tmp_path: Path) -> None:
    text = BASE + "    quotas:\n      A100-80G:\n        gpu: 0.0005\n"
    expect_error(
        tmp_path, text, 8, "queues[0].quotas.A100-80G.gpu", "whole number of milli-GPU", "0.0005"
    )


def test_queue_without_quotas_in_a_cohort_is_a_pure_borrower() -> None:
    text = BASE + "    cohort: org\ncohorts:\n  - name: org\n"
    (queue,) = parse_quotas(text, "<text>").queues
    assert (queue.cohort, queue.quotas) == ("org", None)


def test_unknown_flavor_against_the_cluster(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "    quotas:\n      H100-80G:\n        gpu: 8\n")
    config = load_quotas(path)
    with pytest.raises(ConfigError) as caught:
        check_against_cluster(config, ["A100-80G"], path)
    message = str(caught.value)
    assert message.startswith(f"{path}:7: field 'queues[0].quotas.H100-80G':"), message
    assert "unknown flavor 'H100-80G'" in message
    assert "the cluster has: A100-80G" in message


def test_unknown_flavor_without_the_file_still_names_it() -> None:
    config = parse_quotas(BASE + "    quotas: {H100: {gpu: 8}}\n", "<text>")
    with pytest.raises(ConfigError, match=r"^<text>: queue train\.quotas\.H100\.gpu: unknown"):
        check_against_cluster(config, ["A100-80G"], "<text>")


def test_non_integer_priority_class(tmp_path: Path) -> None:
    text = "priority_classes:\n  high: 1.5\n" + BASE
    expect_error(tmp_path, text, 2, "priority_classes.high", "must be an integer")


@pytest.mark.parametrize("value", ["0", "-24"])
def test_half_life_must_be_positive(tmp_path: Path, value: str) -> None:
    text = f"usage_half_life_hours: {value}\n" + BASE
    expect_error(tmp_path, text, 1, "usage_half_life_hours", "> 0")


def test_duplicate_queue_names(tmp_path: Path) -> None:
    text = BASE + "  - name: train\n    tenant: vision\n"
    expect_error(tmp_path, text, 6, "queues[1].name", "'train' is already defined on line 4")


def test_unknown_preemption_rule(tmp_path: Path) -> None:
    text = BASE + "    preemption:\n      fair_share: [lte_final_share, fastest]\n"
    expect_error(
        tmp_path,
        text,
        7,
        "queues[0].preemption.fair_share[1]",
        "must be one of lte_final_share, lt_initial_share",
    )


def test_tenants_and_queues_are_required(tmp_path: Path) -> None:
    expect_error(tmp_path, "tenants: []\nqueues: []\n", 1, "tenants", "at least one tenant")
    expect_error(tmp_path, "tenants:\n  - name: a\n", 1, "queues", "is required")


def test_empty_quotas_mapping_is_rejected(tmp_path: Path) -> None:
    expect_error(tmp_path, BASE + "    quotas: {}\n", 6, "queues[0].quotas", "unconstrained")


def test_lending_limit_above_nominal(tmp_path: Path) -> None:
    # Kueue's ClusterQueue validation: lendingLimit <= nominalQuota.
    expect_error(
        tmp_path,
        BASE + "    quotas:\n      A100-80G:\n        gpu: {nominal: 4, lending_limit: 10}\n",
        8,
        "queues[0].quotas.A100-80G.gpu.lending_limit",
        "must be <= nominal (4), got 10",
        "lends only quota it owns",
    )


def test_a_cohort_may_lend_more_than_its_own_nominal() -> None:
    config = parse_quotas(
        textwrap.dedent(
            """\
            tenants:
              - name: a
            cohorts:
              - name: root
              - name: org
                parent: root
                quotas:
                  H100: {gpu: {nominal: 0, lending_limit: 2}}
            queues:
              - name: q
                tenant: a
                cohort: org
                quotas:
                  H100: {gpu: 4}
            """
        ),
        "inline",
    )
    assert config.cohorts[1].quotas[("H100", "gpu")] == ResourceQuota(0, None, 2_000)


def test_the_preemption_rules_read_from_the_file() -> None:
    text = """\
priority_classes: {batch: 0, urgent: 100}
min_runtime_seconds_by_priority_class: {batch: 900}
tenants:
  - name: vision
cohorts:
  - {name: org}
  - {name: sub, parent: org, weight: 2}
queues:
  - name: train
    tenant: vision
    cohort: sub
    quotas: {H100: {gpu: 4}}
    preemption:
      within_queue: lower_or_newer_equal_priority
      borrow_within_cohort: {policy: lower_priority, max_priority_threshold: 0}
      min_runtime_seconds: 300
  - name: loose
    tenant: vision
    cohort: org
    preemption: {borrow_within_cohort: lower_priority}
"""
    config = parse_quotas(text, "<text>")
    train, loose = config.queues
    assert train.preemption == PreemptionRules(
        within_queue=WithinQueue.LOWER_OR_NEWER_EQUAL_PRIORITY,
        borrow_within_cohort=BorrowWithinCohort.LOWER_PRIORITY,
        max_priority_threshold=0,
        min_runtime_seconds=300.0,
    )
    assert loose.preemption.borrow_within_cohort is BorrowWithinCohort.LOWER_PRIORITY
    assert loose.quotas is None  # a pure borrower
    assert [c.weight for c in config.cohorts] == [1.0, 2.0]
    assert config.min_runtime_by_class == {"batch": 900.0}
    assert config.min_runtime("train", 0) == 900.0
    assert config.min_runtime("train", 100) == 300.0


def test_an_exemption_must_name_a_priority_class(tmp_path: Path) -> None:
    text = "priority_classes: {batch: 0}\nmin_runtime_seconds_by_priority_class: {nope: 5}\n"
    expect_error(
        tmp_path,
        text + BASE,
        2,
        "min_runtime_seconds_by_priority_class.nope",
        "unknown priority class",
    )


def test_a_threshold_needs_the_borrowing_policy(tmp_path: Path) -> None:
    text = (
        BASE
        + "    preemption:\n      borrow_within_cohort:\n"
        + "        {policy: never, max_priority_threshold: 1}\n"
    )
    expect_error(
        tmp_path, text, 8, "queues[0].preemption.borrow_within_cohort.max_priority_threshold",
        "applies only with policy: lower_priority",
    )  # fmt: skip


@pytest.mark.parametrize("value", ["gpu_seconds", "billed"])
def test_fair_share_usage_is_read(tmp_path: Path, value: str) -> None:
    config = load_quotas(write(tmp_path, f"fair_share_usage: {value}\n" + BASE))
    assert config.fair_share_usage == FairShareUsage(value)


def test_fair_share_usage_defaults_to_gpu_seconds(tmp_path: Path) -> None:
    assert load_quotas(write(tmp_path, BASE)).fair_share_usage is FairShareUsage.GPU_SECONDS


def test_fair_share_usage_must_be_known(tmp_path: Path) -> None:
    text = "fair_share_usage: dollars\n" + BASE
    expect_error(tmp_path, text, 1, "fair_share_usage", "gpu_seconds, billed", "'dollars'")
