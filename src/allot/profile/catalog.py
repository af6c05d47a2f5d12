"""The flavor catalog: per GPU type, its published peak figures (dense TFLOP/s by dtype,
memory, interconnect and host-link bandwidth) and its price per GPU-hour, read from a YAML
file (``flavors.yaml`` beside this module documents every field and cites its sources), plus
what a healthy node is expected to reach of those peaks (``Expected``).

A flavor is found by its name or one of its aliases, without case, so the names allot's
nodes get from NVML (``H100-80GB-HBM3``) find their entry (``H100-SXM``). A catalog file is
checked whole when read: a bad value raises ``ConfigError`` naming the file, line and field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from allot.config.yamldoc import YamlMap, load_yaml

DEFAULT_CATALOG = Path(__file__).with_name("flavors.yaml")
CATALOG_VARIABLE = "ALLOT_FLAVOR_CATALOG"
DTYPES = ("bf16", "fp16", "tf32", "fp32", "fp64", "fp8")
GB = 1e9
TERA = 1e12


@dataclass(frozen=True)
class FlavorSpec:
    """One GPU type's figures, per GPU (bandwidths in GB/s, compute in TFLOP/s)."""

    name: str
    tflops: dict[str, float]
    memory_gbps: float
    memory_gib: float = 0.0
    interconnect_gbps: float | None = None
    host_gbps: float | None = None
    price_per_gpu_hour: float | None = None
    aliases: tuple[str, ...] = ()

    def peak_flops(self, dtype: str) -> float:
        """Peak FLOP/s for ``dtype``; a dtype the card lacks runs at the next one it has
        (bf16 on a V100 runs as fp32, as PyTorch emulates it there)."""
        for candidate in _FALLBACK.get(dtype, (dtype, "fp32")):
            if candidate in self.tflops:
                return self.tflops[candidate] * TERA
        return max(self.tflops.values()) * TERA

    @property
    def bandwidth(self) -> float:
        """Memory bandwidth in bytes/s."""
        return self.memory_gbps * GB


# What runs where a dtype is missing: fp16 autocast stays fp16; bf16 falls back to fp32.
_FALLBACK = {
    "bf16": ("bf16", "fp32"),
    "fp16": ("fp16", "fp32"),
    "fp8": ("fp8", "bf16", "fp16", "fp32"),
    "tf32": ("tf32", "fp32"),
    "fp32": ("fp32",),
    "fp64": ("fp64", "fp32"),
}


@dataclass(frozen=True)
class Expected:
    """Shares of the published peaks a healthy node reaches, and the flagging threshold."""

    gemm: float = 0.6
    memory: float = 0.8
    host: float = 0.7
    collective: float = 0.35
    threshold: float = 0.8


@dataclass(frozen=True)
class Catalog:
    """Flavors by name, and what a healthy node of each is expected to reach."""

    flavors: tuple[FlavorSpec, ...]
    expected: Expected = field(default_factory=Expected)
    source: str = ""

    def find(self, flavor: str) -> FlavorSpec | None:
        """The entry named ``flavor`` (or with it as an alias), without case; None if none."""
        wanted = flavor.lower()
        for spec in self.flavors:
            if spec.name.lower() == wanted or wanted in (a.lower() for a in spec.aliases):
                return spec
        return None


def load_catalog(path: str | Path | None = None) -> Catalog:
    """The catalog at ``path``; without one, the file ``ALLOT_FLAVOR_CATALOG`` names, else the
    one shipped with allot. Raises ConfigError for a bad file."""
    chosen = path or os.environ.get(CATALOG_VARIABLE) or DEFAULT_CATALOG
    doc = load_yaml(chosen)
    doc.check_keys(("expected", "flavors"), required=("flavors",))
    expected = Expected()
    if "expected" in doc:
        expected = _expected(doc.get_map("expected"))
    flavors: list[FlavorSpec] = []
    names: dict[str, int] = {}
    for item in doc.get_list("flavors"):
        spec = _flavor(item.as_map())
        for name in (spec.name, *spec.aliases):
            if name.lower() in names:
                raise item.error(f"{name!r} names the flavor on line {names[name.lower()]} too")
            names[name.lower()] = item.line
        flavors.append(spec)
    return Catalog(tuple(flavors), expected, str(chosen))


def _expected(doc: YamlMap) -> Expected:
    keys = ("gemm", "memory", "host", "collective", "threshold")
    doc.check_keys(keys)
    defaults = Expected()
    values = {}
    for key in keys:
        value = doc.get_float(key, positive=True, default=getattr(defaults, key))
        if value > 1:
            raise doc.error(key, f"must be a share between 0 and 1, got {value}")
        values[key] = value
    return Expected(**values)


def _flavor(doc: YamlMap) -> FlavorSpec:
    doc.check_keys(
        (
            "name",
            "aliases",
            "memory_gib",
            "tflops",
            "memory_gbps",
            "interconnect_gbps",
            "host_gbps",
            "price_per_gpu_hour",
        ),
        required=("name", "tflops", "memory_gbps"),
    )
    tflops_doc = doc.get_map("tflops")
    tflops_doc.check_keys(DTYPES)
    tflops = {k: tflops_doc.get_float(k, positive=True) for k in tflops_doc.keys()}  # noqa: SIM118
    if not tflops:
        raise doc.error("tflops", "must give at least one dtype's peak")

    def maybe(key: str) -> float | None:
        return None if doc.optional(key) is None else doc.get_float(key, positive=True)

    return FlavorSpec(
        name=doc.get_str("name"),
        tflops=tflops,
        memory_gbps=doc.get_float("memory_gbps", positive=True),
        memory_gib=doc.get_float("memory_gib", minimum=0, default=0.0),
        interconnect_gbps=maybe("interconnect_gbps"),
        host_gbps=maybe("host_gbps"),
        price_per_gpu_hour=maybe("price_per_gpu_hour"),
        aliases=tuple(a.as_str() for a in doc.get_list("aliases", default_empty=True)),
    )
