"""Quota files: tenants, queues, the cohort tree and preemption rules, read into a ``QuotaConfig``.

A quota file is YAML (the full format is in ``docs/quotas.md``)::

    usage_half_life_hours: 168          # decayed-usage half-life, > 0
    fair_share_usage: gpu_seconds       # or billed: usage counts the money metering bills
    priority_classes: {high: 100, normal: 0, low: -10}
    min_runtime_seconds_by_priority_class: {high: 600}   # not preempted before 10 min
    tenants:
      - {name: vision, share: 2}
    cohorts:
      - {name: org, parent: null, weight: 1, quotas: {...}}
    queues:
      - name: vision-train
        tenant: vision
        cohort: org
        weight: 1
        quotas:                         # flavor -> resource -> quota
          A100-80G:
            gpu: 32                     # a bare number is the nominal quota
            cpu: {nominal: 256, borrowing_limit: 64}
            memory_gib: {nominal: 2048, lending_limit: 512}
        preemption:
          within_queue: lower_priority  # or never, lower_or_newer_equal_priority
          reclaim_within_cohort: any
          borrow_within_cohort: {policy: lower_priority, max_priority_threshold: 0}
          fair_share: [lte_final_share, lt_initial_share]
          grace_seconds: 60
          min_runtime_seconds: 300

Units as written: ``gpu`` in GPUs (stored as milli-GPU), ``cpu`` in cores (milli-cores),
``memory_gib`` in GiB or ``memory_mib`` in MiB (both stored as MiB under the core's ``memory``).

Invariants: every problem raises ``ConfigError`` naming the file, the line and the field; the
tree's own rules (known tenants and cohorts, no cycles, ...) are the core's ``QuotaConfig``
checks, and each ``SpecError`` they raise is mapped back to the line it concerns; an amount is
accepted only when it is a whole number of the stored unit, so nothing is silently rounded; a
queue's ``lending_limit`` is at most its ``nominal`` (Kueue's ClusterQueue validation).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple, TypeVar

import yaml

from allot.config.errors import ConfigError
from allot.config.yamldoc import YamlMap, YamlNode, load_yaml, parse_yaml
from allot.core.model import MIB_PER_GIB, MILLI_PER_CPU, MILLI_PER_GPU, SECONDS_PER_HOUR, SpecError
from allot.core.quota.config import (
    BorrowWithinCohort,
    CohortSpec,
    FairShareRule,
    FlavorResource,
    PreemptionRules,
    QueueSpec,
    QuotaConfig,
    ReclaimWithinCohort,
    ResourceQuota,
    TenantSpec,
    WithinQueue,
)
from allot.core.quota.fair_share import FairShareUsage

DEFAULT_HALF_LIFE_HOURS = 168.0  # one week, Slurm's PriorityDecayHalfLife default is 7 days

_TOP_KEYS = (
    "usage_half_life_hours",
    "fair_share_usage",
    "priority_classes",
    "min_runtime_seconds_by_priority_class",
    "tenants",
    "cohorts",
    "queues",
)
_TENANT_KEYS = ("name", "share")
_COHORT_KEYS = ("name", "parent", "weight", "quotas")
_QUEUE_KEYS = ("name", "tenant", "cohort", "weight", "quotas", "preemption", "idle_timeout")
_PREEMPTION_KEYS = (
    "within_queue",
    "reclaim_within_cohort",
    "borrow_within_cohort",
    "fair_share",
    "grace_seconds",
    "min_runtime_seconds",
)
_BORROW_KEYS = ("policy", "max_priority_threshold")
_LIMIT_KEYS = ("nominal", "borrowing_limit", "lending_limit")
_DEFAULT_RULES = PreemptionRules()

_E = TypeVar("_E", bound=StrEnum)


class _Unit(NamedTuple):
    """How a resource key of the file maps to the core: its resource name and scale."""

    resource: str
    per_written: int  # stored units per written unit
    stored: str  # the stored unit, for messages


_UNITS: dict[str, _Unit] = {
    "gpu": _Unit("gpu", MILLI_PER_GPU, "milli-GPU"),
    "cpu": _Unit("cpu", MILLI_PER_CPU, "milli-cores"),
    "memory_gib": _Unit("memory", MIB_PER_GIB, "MiB"),
    "memory_mib": _Unit("memory", 1, "MiB"),
}


def load_quotas(path: str | Path) -> QuotaConfig:
    """Read and validate the quota file at ``path``; raise ``ConfigError`` on any problem."""
    return _read(load_yaml(path))[0]


def parse_quotas(text: str, source: str) -> QuotaConfig:
    """Read quota YAML ``text``; ``source`` names it in error messages."""
    return _read(parse_yaml(text, source))[0]


def check_against_cluster(
    config: QuotaConfig, cluster_flavors: Iterable[str], source: str | Path
) -> None:
    """Raise ``ConfigError`` naming ``source`` when a quota names a flavor the cluster lacks.

    The error points at the flavor's key when ``source`` is the file ``config`` was read from.
    """
    try:
        config.check_flavors(cluster_flavors)
    except SpecError as exc:
        raise _flavor_error(str(source), exc) from None


def _flavor_error(source: str, exc: SpecError) -> ConfigError:
    # A QuotaConfig is a core value and keeps no lines, so the file is read again to find the
    # flavor's key. The field is "<owner>.quotas.<flavor>.<resource>"; resource names have no
    # dots, so dropping the last part leaves the flavor even when its name has dots.
    flavor_field = exc.field.rpartition(".")[0]
    try:
        _, locator = _read(load_yaml(source))
    except ConfigError:
        return ConfigError(source, f"{exc.field}: {exc.rule}")
    node = locator.nodes.get(flavor_field)
    if node is None:
        return ConfigError(source, f"{exc.field}: {exc.rule}")
    return node.error(exc.rule)


class _Locator:
    """Where each core field name (``queue X.tenant``) came from in the file, so a
    ``SpecError`` raised by the core values can name the line and field it concerns."""

    def __init__(self, doc: YamlMap) -> None:
        self.doc = doc
        self.nodes: dict[str, YamlNode] = {}

    def add(self, field: str, node: YamlNode | None) -> None:
        if node is not None:
            self.nodes[field] = node

    def error(self, exc: SpecError) -> ConfigError:
        """The ``ConfigError`` for ``exc`` at the nearest recorded field."""
        field = exc.field
        while field:
            node = self.nodes.get(field)
            if node is not None:
                rest = exc.field[len(field) + 1 :]
                return node.error(f"{rest}: {exc.rule}" if rest else exc.rule)
            field = field.rpartition(".")[0]
        return ConfigError(self.doc.source, f"{exc.field}: {exc.rule}", line=self.doc.line)


def _read(doc: YamlMap) -> tuple[QuotaConfig, _Locator]:
    """The config of a whole document and where each of its fields came from."""
    doc.check_keys(_TOP_KEYS, required=("tenants", "queues"))
    locator = _Locator(doc)
    half_life_hours = doc.get_float(
        "usage_half_life_hours", positive=True, default=DEFAULT_HALF_LIFE_HOURS
    )
    locator.add("usage_half_life", doc.optional("usage_half_life_hours"))
    usage = _choice(doc, "fair_share_usage", FairShareUsage, FairShareUsage.GPU_SECONDS)
    try:
        classes = _read_priority_classes(doc.optional("priority_classes"), locator)
        exempt = _read_exemptions(doc.optional("min_runtime_seconds_by_priority_class"), locator)
        tenant_items = _entries(doc, "tenants", "tenant", locator)
        tenants = [_read_tenant(item.as_map(), locator) for item in tenant_items]
        cohorts_items = _entries(doc, "cohorts", "cohort", locator, required=False)
        cohorts = [_read_cohort(item.as_map(), locator) for item in cohorts_items]
        queue_items = _entries(doc, "queues", "queue", locator)
        queues = [_read_queue(item.as_map(), locator) for item in queue_items]
        config = QuotaConfig(
            tuple(tenants),
            tuple(queues),
            tuple(cohorts),
            half_life_hours * SECONDS_PER_HOUR,
            classes,
            exempt,
            usage,
        )
    except SpecError as exc:
        raise locator.error(exc) from None
    return config, locator


def _entries(
    doc: YamlMap, key: str, kind: str, locator: _Locator, *, required: bool = True
) -> list[YamlNode]:
    """The items of a top-level list, whose entries' names must be unique."""
    items = doc.get_list(key, default_empty=not required)
    if required and not items:
        raise doc.error(key, f"must list at least one {kind}")
    locator.add(key, doc.optional(key))
    lines: dict[str, int] = {}
    for item in items:
        entry = item.as_map()
        name = entry.get_str("name")
        if name in lines:
            raise entry.error("name", f"{kind} {name!r} is already defined on line {lines[name]}")
        lines[name] = entry.line_of("name")
    return items


def _read_priority_classes(node: YamlNode | None, locator: _Locator) -> dict[str, int]:
    """``priority_classes``: name -> integer priority."""
    if node is None:
        return {}
    classes: dict[str, int] = {}
    for key, value in node.as_pairs():
        name = key.as_str()
        locator.add(f"priority_classes.{name}", value)
        classes[name] = value.as_int()
    return classes


def _read_exemptions(node: YamlNode | None, locator: _Locator) -> dict[str, float]:
    """``min_runtime_seconds_by_priority_class``: priority class name -> seconds."""
    if node is None:
        return {}
    exempt: dict[str, float] = {}
    for key, value in node.as_pairs():
        name = key.as_str()
        locator.add(f"min_runtime_by_class.{name}", value)
        exempt[name] = value.as_float(minimum=0)
    return exempt


def _read_tenant(entry: YamlMap, locator: _Locator) -> TenantSpec:
    """One ``tenants`` entry."""
    entry.check_keys(_TENANT_KEYS, required=("name",))
    name = entry.get_str("name")
    locator.add(f"tenant {name}", entry.node_of("name"))
    locator.add(f"tenant {name}.share", entry.optional("share"))
    return TenantSpec(name, entry.get_float("share", positive=True, default=1.0))


def _read_cohort(entry: YamlMap, locator: _Locator) -> CohortSpec:
    """One ``cohorts`` entry."""
    entry.check_keys(_COHORT_KEYS, required=("name",))
    name = entry.get_str("name")
    owner = f"cohort {name}"
    locator.add(owner, entry.node_of("name"))
    parent_node = entry.optional("parent")
    locator.add(f"{owner}.parent", parent_node)
    parent = None if parent_node is None else parent_node.as_str()
    quotas_node = entry.optional("quotas")
    quotas = {} if quotas_node is None else _read_quotas(quotas_node, owner, locator)
    locator.add(f"{owner}.weight", entry.optional("weight"))
    weight = entry.get_float("weight", minimum=0, default=1.0)
    return CohortSpec(name, parent, quotas, weight)


def _read_queue(entry: YamlMap, locator: _Locator) -> QueueSpec:
    """One ``queues`` entry."""
    entry.check_keys(_QUEUE_KEYS, required=("name", "tenant"))
    name = entry.get_str("name")
    owner = f"queue {name}"
    locator.add(owner, entry.node_of("name"))
    for key in ("tenant", "cohort", "weight", "quotas", "preemption", "idle_timeout"):
        locator.add(f"{owner}.{key}", entry.optional(key))
    tenant = entry.get_str("tenant")
    cohort_node = entry.optional("cohort")
    cohort = None if cohort_node is None else cohort_node.as_str()
    weight = entry.get_float("weight", minimum=0, default=1.0)
    quotas_node = entry.optional("quotas")
    quotas = None
    if quotas_node is not None:
        quotas = _read_quotas(quotas_node, owner, locator)
        if not quotas:
            # An empty mapping would admit nothing at all, which is never what was meant.
            raise quotas_node.error(
                "must list at least one flavor; leave quotas out for an unconstrained queue "
                "(or, in a cohort, a queue that only borrows)"
            )
    rules = _read_preemption(entry.optional("preemption"), locator)
    idle = None
    if entry.optional("idle_timeout") is not None:
        idle = entry.get_float("idle_timeout", minimum=60)
    return QueueSpec(name, tenant, cohort, quotas, weight, rules, idle)


def _read_quotas(
    node: YamlNode, owner: str, locator: _Locator
) -> dict[FlavorResource, ResourceQuota]:
    """A ``quotas`` block: flavor -> resource -> quota, in the core's units."""
    quotas: dict[FlavorResource, ResourceQuota] = {}
    for flavor_key, value in node.as_pairs():
        flavor = flavor_key.as_str()
        locator.add(f"{owner}.quotas.{flavor}", flavor_key)
        resources = value.as_map()
        resources.check_keys(_UNITS)
        keys = resources.keys()
        if not keys:
            raise value.error(f"must list at least one resource: {', '.join(_UNITS)}")
        if "memory_gib" in resources and "memory_mib" in resources:
            raise resources.error("memory_mib", "give either memory_gib or memory_mib, not both")
        for key in keys:
            unit = _UNITS[key]
            where = f"{owner}.quotas.{flavor}.{unit.resource}"
            quota_node = resources.node_of(key)
            locator.add(where, quota_node)
            quotas[flavor, unit.resource] = _read_quota(quota_node, unit, where, locator)
    return quotas


def _read_quota(node: YamlNode, unit: _Unit, where: str, locator: _Locator) -> ResourceQuota:
    """One resource's quota: a bare nominal, or ``{nominal, borrowing_limit, lending_limit}``."""
    if not isinstance(node.node, yaml.MappingNode):
        locator.add(f"{where}.nominal", node)
        return ResourceQuota(_amount(node, unit))
    limits = node.as_map()
    limits.check_keys(_LIMIT_KEYS, required=("nominal",))
    nominal_node = limits.node_of("nominal")
    locator.add(f"{where}.nominal", nominal_node)
    nominal = _amount(nominal_node, unit)
    limit: dict[str, int | None] = {}
    for key in ("borrowing_limit", "lending_limit"):
        # A null limit reads as no limit, the same as leaving the key out.
        value = limits.optional(key)
        locator.add(f"{where}.{key}", value)
        limit[key] = None if value is None else _amount(value, unit)
    lending = limit["lending_limit"]
    if where.startswith("queue ") and lending is not None and lending > nominal:
        # Kueue's ClusterQueue webhook rejects lendingLimit > nominalQuota; cohorts are exempt.
        raise limits.error(
            "lending_limit",
            f"must be <= nominal ({_written(nominal, unit)}), got {_written(lending, unit)}:"
            " a queue lends only quota it owns",
        )
    return ResourceQuota(nominal, limit["borrowing_limit"], lending)


def _written(stored: int, unit: _Unit) -> str:
    """An amount in the unit the file writes it in, for messages."""
    return f"{stored / unit.per_written:g}"


def _amount(node: YamlNode, unit: _Unit) -> int:
    """A non-negative amount in the written unit, as a whole number of the stored unit."""
    written = node.as_float(minimum=0)
    stored = written * unit.per_written
    whole = round(stored)
    # Relative tolerance: 1.1 GPUs is 1100.0000000000002 milli-GPU in binary floating point.
    if abs(stored - whole) > 1e-9 * max(1.0, stored):
        scaled = f" ({stored:g} {unit.stored})" if unit.per_written != 1 else ""
        raise node.error(f"must be a whole number of {unit.stored}, got {written:g}{scaled}")
    return whole


def _read_preemption(node: YamlNode | None, locator: _Locator) -> PreemptionRules:
    """A queue's ``preemption`` block; absent keys take ``PreemptionRules``' defaults."""
    if node is None:
        return _DEFAULT_RULES
    block = node.as_map()
    block.check_keys(_PREEMPTION_KEYS)
    within = _choice(block, "within_queue", WithinQueue, _DEFAULT_RULES.within_queue)
    reclaim = _choice(
        block, "reclaim_within_cohort", ReclaimWithinCohort, _DEFAULT_RULES.reclaim_within_cohort
    )
    fair_share: list[FairShareRule] = []
    for item in block.get_list("fair_share", default_empty=True):
        rule = _enum(item, FairShareRule)
        if rule in fair_share:
            raise item.error(f"{rule.value!r} is listed twice")
        fair_share.append(rule)
    grace = block.get_float("grace_seconds", minimum=0, default=_DEFAULT_RULES.grace_seconds)
    min_runtime = block.get_float("min_runtime_seconds", minimum=0, default=0.0)
    borrow, threshold = _read_borrowing(block.optional("borrow_within_cohort"))
    # PreemptionRules names its fields without the queue; the SpecError is raised right here,
    # so the entry recorded last is the one it concerns.
    locator.add("preemption.grace_seconds", block.optional("grace_seconds"))
    return PreemptionRules(
        within, reclaim, tuple(fair_share), grace, borrow, threshold, min_runtime
    )


def _read_borrowing(node: YamlNode | None) -> tuple[BorrowWithinCohort, int | None]:
    """``borrow_within_cohort``: ``{policy: lower_priority, max_priority_threshold: N}`` (or
    just the policy)."""
    if node is None:
        return BorrowWithinCohort.NEVER, None
    if not isinstance(node.node, yaml.MappingNode):
        return _enum(node, BorrowWithinCohort), None
    block = node.as_map()
    block.check_keys(_BORROW_KEYS, required=("policy",))
    policy = _enum(block.node_of("policy"), BorrowWithinCohort)
    threshold_node = block.optional("max_priority_threshold")
    threshold = None if threshold_node is None else threshold_node.as_int()
    if threshold is not None and policy is BorrowWithinCohort.NEVER:
        raise block.error("max_priority_threshold", "applies only with policy: lower_priority")
    return policy, threshold


def _choice(block: YamlMap, key: str, kind: type[_E], default: _E) -> _E:
    """An optional enumerated field."""
    node = block.optional(key)
    return default if node is None else _enum(node, kind)


def _enum(node: YamlNode, kind: type[_E]) -> _E:
    """One of ``kind``'s values, written as text."""
    text = node.as_str()
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise node.error(f"must be one of {allowed}, got {text!r}") from None
