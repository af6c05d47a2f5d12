"""The quota tree: nominal quota, borrowing and lending limits, nested cohorts, shares."""

from __future__ import annotations

import pytest

from allot.core.model import SpecError
from allot.core.quota.config import (
    CohortSpec,
    QueueSpec,
    QuotaConfig,
    ResourceQuota,
    TenantSpec,
)
from allot.core.quota.tree import QuotaTree

GPU = ("H100", "gpu")


def gpus(n: float) -> int:
    return round(n * 1000)


def queue(
    name: str,
    nominal: float,
    *,
    cohort: str | None = "org",
    borrowing: float | None = None,
    lending: float | None = None,
    weight: float = 1.0,
) -> QueueSpec:
    quota = ResourceQuota(
        gpus(nominal),
        None if borrowing is None else gpus(borrowing),
        None if lending is None else gpus(lending),
    )
    return QueueSpec(name, "t", cohort, {GPU: quota}, weight=weight)


def tree(*queues: QueueSpec, cohorts: tuple[CohortSpec, ...] = (CohortSpec("org"),)) -> QuotaTree:
    return QuotaTree(QuotaConfig((TenantSpec("t"),), queues, cohorts))


def room(t: QuotaTree, name: str) -> float:
    return t.available(t.queues[name], GPU) / 1000


def test_a_queue_borrows_what_its_cohort_does_not_use() -> None:
    t = tree(queue("a", 4), queue("b", 4))
    assert room(t, "a") == 8
    t.add("b", {GPU: gpus(3)})
    assert room(t, "a") == 5
    t.add("a", {GPU: gpus(5)})
    assert t.borrowing("a", GPU) == gpus(1)
    assert t.block("a", {GPU: gpus(1)}) is not None


def test_borrowing_limit_caps_a_queue_above_its_nominal() -> None:
    t = tree(queue("a", 4, borrowing=2), queue("b", 4))
    assert room(t, "a") == 6
    block = t.block("a", {GPU: gpus(7)})
    assert block is not None
    assert (block.node, block.limit, block.available) == ("a", "borrowing_limit", gpus(6))


def test_lending_limit_keeps_the_rest_guaranteed() -> None:
    t = tree(queue("a", 4), queue("b", 4, lending=1))
    assert room(t, "a") == 5  # b lends at most 1 of its 4
    t.add("a", {GPU: gpus(5)})
    assert room(t, "b") == 3  # b's guaranteed 3 stay its own
    block = t.block("a", {GPU: gpus(1)})
    assert block is not None
    assert (block.node, block.limit) == ("org", "cohort")


def test_add_then_remove_restores_usage_everywhere() -> None:
    t = tree(queue("a", 4, lending=2), queue("b", 4))
    for amount in (1, 3, 2):
        t.add("a", {GPU: gpus(amount)})
    t.remove("a", {GPU: gpus(2)})
    t.remove("a", {GPU: gpus(3)})
    t.remove("a", {GPU: gpus(1)})
    assert t.queues["a"].usage[GPU] == 0
    assert t.cohorts["org"].usage[GPU] == 0


def test_nested_cohorts_pool_quota_up_the_tree() -> None:
    cohorts = (
        CohortSpec("root", quotas={GPU: ResourceQuota(gpus(2))}),
        CohortSpec("left", parent="root"),
        CohortSpec("right", parent="root", quotas={GPU: ResourceQuota(gpus(0), gpus(1))}),
    )
    t = tree(
        queue("a", 4, cohort="left"),
        queue("b", 4, cohort="right"),
        cohorts=cohorts,
    )
    assert t.cohorts["root"].subtree[GPU] == gpus(10)
    assert room(t, "a") == 10
    # right's subtree quota is 4; its borrowing limit lets it take 1 more from root.
    assert room(t, "b") == 5
    t.add("a", {GPU: gpus(9)})
    assert room(t, "b") == 1
    assert t.cohort_root("a") == t.cohort_root("b") == "root"


def test_a_queue_outside_any_cohort_has_its_nominal_only() -> None:
    t = tree(queue("solo", 3, cohort=None), cohorts=())
    assert room(t, "solo") == 3
    block = t.block("solo", {GPU: gpus(4)})
    assert block is not None
    assert block.limit == "nominal"


def test_queue_without_quotas_is_unconstrained_and_flavors_must_be_covered() -> None:
    config = QuotaConfig(
        (TenantSpec("t"),), (QueueSpec("free", "t"), queue("a", 4, cohort=None)), ()
    )
    t = QuotaTree(config)
    assert t.block("free", {GPU: gpus(1000)}) is None
    block = t.block("a", {("A100", "gpu"): gpus(1)})
    assert block is not None
    assert block.limit == "not_covered"
    assert t.block("a", {("H100", "cpu"): 10**9}) is None  # cpu not listed: unlimited


def test_dominant_share_is_borrowing_over_lendable_divided_by_weight() -> None:
    t = tree(queue("a", 4), queue("b", 4, weight=2))
    assert t.dominant_share("a") == 0
    t.add("a", {GPU: gpus(6)})
    assert t.dominant_share("a") == pytest.approx(2 / 8)
    assert t.dominant_share("b", {GPU: gpus(6)}) == pytest.approx(2 / 8 / 2)
    assert t.within_nominal("b", {GPU: gpus(4)})
    assert not t.within_nominal("b", {GPU: gpus(5)})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            lambda: QuotaConfig(
                (TenantSpec("t"),),
                (),
                (CohortSpec("a", parent="b"), CohortSpec("b", parent="a")),
            ),
            "forms a cycle: a -> b -> a",
        ),
        (lambda: QuotaConfig((), (queue("q", 1),), (CohortSpec("org"),)), "unknown tenant 't'"),
        (
            lambda: QuotaConfig((TenantSpec("t"),), (queue("q", -1),), (CohortSpec("org"),)),
            "nominal: must be >= 0",
        ),
        (
            lambda: QuotaConfig((TenantSpec("t"),), (queue("q", 1, cohort="nope"),), ()),
            "unknown cohort 'nope'",
        ),
    ],
)
def test_bad_configuration_names_the_rule(config: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        config()  # type: ignore[operator]


def test_unknown_flavor_against_the_cluster() -> None:
    config = QuotaConfig((TenantSpec("t"),), (queue("q", 1),), (CohortSpec("org"),))
    config.check_flavors(["H100"])
    with pytest.raises(SpecError, match="unknown flavor 'H100'; the cluster has: A100"):
        config.check_flavors(["A100"])


def test_a_lending_limit_that_binds_names_the_lender() -> None:
    t = tree(queue("a", 4), queue("b", 4, lending=1))
    block = t.block("a", {GPU: gpus(6)})
    assert block is not None
    assert (block.node, block.limit, block.available) == ("org", "cohort", gpus(5))
    assert (block.lender, block.lender_kind, block.withheld) == ("b", "queue", gpus(3))
    # Once b uses its guaranteed part, nothing is withheld: the cohort is simply full.
    t.add("b", {GPU: gpus(3)})
    t.add("a", {GPU: gpus(4)})
    block = t.block("a", {GPU: gpus(2)})
    assert block is not None
    assert (block.node, block.lender, block.withheld) == ("org", None, 0)


def test_a_cohort_lending_limit_names_the_cohort() -> None:
    cohorts = (
        CohortSpec("root"),
        CohortSpec("left", parent="root"),
        CohortSpec("right", parent="root", quotas={GPU: ResourceQuota(0, None, gpus(1))}),
    )
    t = tree(queue("a", 2, cohort="left"), queue("b", 4, cohort="right"), cohorts=cohorts)
    assert room(t, "a") == 3  # right lends 1 of the 4 its subtree holds
    block = t.block("a", {GPU: gpus(4)})
    assert block is not None
    assert (block.node, block.lender, block.lender_kind, block.withheld) == (
        "root",
        "right",
        "cohort",
        gpus(3),
    )


def test_shares_are_compared_at_the_lowest_common_ancestor() -> None:
    cohorts = (CohortSpec("root"), CohortSpec("left", parent="root"), CohortSpec("right", "root"))
    t = tree(
        queue("a1", 1, cohort="left"),
        queue("a2", 1, cohort="left"),
        queue("b", 6, cohort="right"),
        cohorts=cohorts,
    )
    sides = t.sides("a1", "b")
    assert sides is not None
    left, right = sides
    assert (left.name, right.name) == ("left", "right")
    t.add("a1", {GPU: gpus(1)})
    t.add("b", {GPU: gpus(7)})
    # a1 borrows a2's idle GPU within left; left borrows nothing from root; right borrows 1.
    # Both sides divide by what root can lend (8 GPUs).
    assert t.dominant_share("a1", {GPU: gpus(1)}) == pytest.approx(1 / 8)
    assert t.share(left, None) == 0
    assert t.share(right) == pytest.approx(1 / 8)
    assert t.sides("a1", "a1") is None


def test_lendable_is_what_the_parent_could_reach() -> None:
    # KEP-1714 with hierarchical cohorts: potential(p) = min(guaranteed(p) + potential(parent),
    # subtree(p) + borrowing_limit(p)).
    cohorts = (
        CohortSpec("root", quotas={GPU: ResourceQuota(gpus(4))}),
        CohortSpec("capped", parent="root", quotas={GPU: ResourceQuota(0, gpus(1))}),
    )
    t = tree(queue("a", 2, cohort="capped"), queue("b", 2, cohort="capped"), cohorts=cohorts)
    capped = t.cohorts["capped"]
    assert capped.potential[GPU] == gpus(5)  # its 4 plus the 1 it may borrow from root
    t.add("a", {GPU: gpus(3)})
    assert t.dominant_share("a") == pytest.approx(1 / 5)


def test_a_queue_lends_at_most_its_nominal_quota() -> None:
    with pytest.raises(SpecError, match=r"lending_limit: must be <= nominal \(4000\), got 5000"):
        tree(queue("a", 4, lending=5))
    # A cohort's lending limit caps what its whole subtree lends: above its own nominal is fine.
    cohorts = (CohortSpec("root"), CohortSpec("c", "root", {GPU: ResourceQuota(0, None, 3000)}))
    assert room(tree(queue("a", 4, cohort="c"), cohorts=cohorts), "a") == 4


def test_a_queue_in_a_cohort_without_quotas_is_a_pure_borrower() -> None:
    gpu = ("H100", "gpu")
    config = QuotaConfig(
        (TenantSpec("t"),),
        (
            QueueSpec("owner", "t", "org", {gpu: ResourceQuota(4000)}),
            QueueSpec("borrower", "t", "org"),
        ),
        (CohortSpec("org"),),
    )
    tree = QuotaTree(config)
    assert tree.knows("borrower")
    assert "borrower" not in tree.unconstrained
    assert tree.covers("borrower", "H100")
    assert tree.fits("borrower", {gpu: 4000})
    assert not tree.within_nominal("borrower", {gpu: 1000})  # it owns nothing
    tree.add("borrower", {gpu: 3000})
    assert tree.borrowing("borrower", gpu) == 3000
    assert not tree.fits("borrower", {gpu: 2000})  # only the owner's 1 GPU is left
    assert tree.within_nominal("owner", {gpu: 1000})
