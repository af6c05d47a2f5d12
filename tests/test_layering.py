"""The package's shape: dependencies point inward, module names say what they own, and every
module opens with a docstring.

``allot.core`` decides and must stay pure (standard library only, and none of the parts of it
that do I/O, read a clock or draw random numbers), so the simulator and the live control plane
can both drive it. ``allot.sim`` may add the numeric, plotting and file-format (pandas,
pyarrow, YAML) libraries, never anything further out and no terminal library.
``allot.control`` drives the core through its ports and knows no adapter; the adapters (store,
executors, api) depend inward on control and core; the client knows only the wire models
(and where a local server keeps its token); the
CLI talks to the server only through the client (``up``, which starts the server, is the one
exception). Imports are read with ``ast``, so nothing is
imported to check them.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "allot"

# No I/O, no clock, no randomness and no concurrency in the core; no dynamic imports either,
# since those would slip past a check that reads import statements.
CORE_FORBIDDEN_STDLIB = frozenset(
    {
        "asyncio",
        "concurrent",
        "datetime",
        "http",
        "importlib",
        "io",
        "multiprocessing",
        "os",
        "pathlib",
        "random",
        "secrets",
        "shutil",
        "socket",
        "sqlite3",
        "subprocess",
        "tempfile",
        "threading",
        "time",
        "urllib",
    }
)
# The numeric, table-file and plotting libraries the design names for the simulator. PyYAML is
# the one addition: the cluster, quota and synthetic-workload files are YAML, and reading a file
# format is what pandas and pyarrow already do for CSV and Parquet traces. Drawing for a
# terminal (rich) belongs to the CLI, never to sim.
SIM_THIRD_PARTY = frozenset({"numpy", "pandas", "pyarrow", "matplotlib", "yaml"})
GRAB_BAG_NAMES = frozenset({"utils.py", "helpers.py", "common.py", "misc.py"})


@dataclass(frozen=True)
class Import:
    """One imported name (a module, or a name taken from one) and where it was imported."""

    module: str
    path: Path
    line: int

    @property
    def top(self) -> str:
        return self.module.split(".", 1)[0]

    def __str__(self) -> str:
        return f"{self.path.relative_to(SRC.parent)}:{self.line}: imports {self.module}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imports_of(path: Path, source: str | None = None) -> list[Import]:
    """Every name ``path`` imports (``source`` stands in for the file's text when given), as
    absolute dotted names: ``from allot.core import model`` gives ``allot.core.model``."""
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(text, filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, path, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # ``from ..sim import x`` inside allot.core.y means allot.sim.x
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            found.extend(Import(f"{base}.{alias.name}", path, node.lineno) for alias in node.names)
    return found


def is_stdlib(module: str) -> bool:
    return module.split(".", 1)[0] in sys.stdlib_module_names


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def offenders(package: str, allowed: Callable[[Import], bool]) -> list[Import]:
    """Imports made by modules of ``package`` that ``allowed`` rejects."""
    return [
        imp
        for path in modules()
        if in_package(module_name(path), package)
        for imp in imports_of(path)
        if not allowed(imp)
    ]


def core_may_import(imp: Import) -> bool:
    if in_package(imp.module, "allot.core"):
        return True
    return is_stdlib(imp.module) and imp.top not in CORE_FORBIDDEN_STDLIB


def sim_may_import(imp: Import) -> bool:
    return (
        is_stdlib(imp.module)
        or in_package(imp.module, "allot.core")
        or in_package(imp.module, "allot.sim")
        or in_package(imp.module, "allot.config")
        or in_package(imp.module, "allot.metering")
        or imp.top in SIM_THIRD_PARTY
    )


# Each outer package: the allot packages and third-party libraries it may import (besides the
# standard library and itself).
LAYERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "allot.wire": (frozenset(), frozenset({"pydantic"})),
    "allot.config": (frozenset({"allot.core"}), frozenset({"yaml"})),
    # Metering prices the ledger for the control plane and the simulator alike.
    "allot.metering": (frozenset({"allot.core", "allot.config"}), frozenset()),
    # Profiling's use cases drive the analysis library (allot.profile), which is pure like the
    # core but numeric, and read its catalog's errors (allot.config).
    "allot.control": (
        frozenset({"allot.core", "allot.profile", "allot.config.errors", "allot.metering"}),
        frozenset(),
    ),
    "allot.profile": (
        frozenset({"allot.config"}),
        frozenset({"numpy", "pandas", "matplotlib", "torch"}),
    ),
    "allot.store": (
        frozenset(
            {
                "allot.core",
                "allot.control.ports",
                "allot.control.records",
                "allot.control.principal",
                "allot.metering.ledger",
                "allot.metering.rollup",
            }
        ),
        frozenset({"sqlalchemy", "alembic"}),
    ),
    "allot.executors": (
        frozenset(
            {"allot.core", "allot.control.ports", "allot.control.records", "allot.profile.capture"}
        ),
        frozenset({"pynvml"}),
    ),
    "allot.api": (
        # allot.config: the OIDC file; jwt: its tokens; uvicorn: the header-read timeout;
        # allot.observe: the metrics it serves and counts
        frozenset(
            {
                "allot.core",
                "allot.control",
                "allot.wire",
                "allot.config",
                "allot.profile",
                "allot.observe",
                "allot.metering",
            }
        ),
        frozenset({"fastapi", "starlette", "pydantic", "jwt", "uvicorn"}),
    ),
    # Observability drives the core forward for start-time estimates and subscribes to the
    # control plane; it exports through Prometheus's client, OpenTelemetry and NVML, and
    # writes its alert rules as YAML.
    "allot.observe": (
        frozenset({"allot.core", "allot.control"}),
        frozenset({"prometheus_client", "opentelemetry", "pynvml", "yaml"}),
    ),
    "allot.client": (
        frozenset(
            {
                "allot.wire.schemas",
                "allot.wire.profiling",
                "allot.wire.tenancy",
                "allot.wire.metering",
                "allot.datadir",
            }
        ),
        frozenset({"httpx", "pydantic"}),
    ),
    "allot.cli": (
        frozenset(
            {
                "allot.client",
                "allot.wire.schemas",
                "allot.wire.profiling",
                "allot.wire.tenancy",
                "allot.wire.metering",
                "allot.datadir",
                "allot.config",
                "allot.profile",
                "allot.sim",
                "allot.core.model",
                "allot.core.policy",
                "allot.core.units",
                "allot.metering",
                "allot.cli",
            }
        ),
        frozenset({"typer", "rich", "yaml", "pydantic", "click"}),
    ),
}
# ``allot up`` starts the server: the one command that may reach the adapters.
CLI_SERVER_MODULES = frozenset({"allot.cli.up"})


def layer_may_import(package: str) -> Callable[[Import], bool]:
    inner, libraries = LAYERS[package]

    def allowed(imp: Import) -> bool:
        if is_stdlib(imp.module) or in_package(imp.module, package) or imp.top in libraries:
            return True
        if imp.module in ("allot", "allot.__version__"):  # the package's own version
            return True
        if any(in_package(imp.module, p) for p in inner):
            return True
        return module_name(imp.path) in CLI_SERVER_MODULES and in_package(imp.module, "allot")

    return allowed


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_outer_layers_depend_inward(package: str) -> None:
    inner, libraries = LAYERS[package]
    found = offenders(package, layer_may_import(package))
    assert not found, report(
        found,
        f"{package} may import only the standard library, itself, "
        + ", ".join(sorted(inner | libraries)),
    )


def report(found: list[Import], rule: str) -> str:
    return f"{rule}:\n" + "\n".join(f"  {imp}" for imp in found)


def test_the_package_is_where_the_checks_look() -> None:
    names = {module_name(p) for p in modules()}
    assert {"allot.core.cycle", "allot.sim.engine", "allot.cli.main"} <= names


def test_core_imports_only_the_pure_standard_library_and_itself() -> None:
    found = offenders("allot.core", core_may_import)
    assert not found, report(
        found,
        "allot.core may import only the standard library (without I/O, clocks, randomness "
        f"or threads: {', '.join(sorted(CORE_FORBIDDEN_STDLIB))}) and allot.core",
    )


def test_sim_imports_only_core_sim_and_its_libraries() -> None:
    found = offenders("allot.sim", sim_may_import)
    assert not found, report(
        found,
        "allot.sim may import only the standard library, allot.core, allot.sim, allot.config and "
        + ", ".join(sorted(SIM_THIRD_PARTY)),
    )


def test_the_checks_catch_forbidden_imports() -> None:
    # Guards the checker itself: a clean result must not come from a walk that sees nothing.
    source = (
        '"""A module that breaks every rule."""\n'
        "import time\n"
        "from datetime import datetime\n"
        "from ..sim import engine\n"
        "from . import model\n"
        "import numpy.typing as npt\n"
        "from allot import cli\n"
    )
    found = imports_of(PACKAGE / "core" / "bad.py", source)
    assert [imp.module for imp in found] == [
        "time",
        "datetime.datetime",
        "allot.sim.engine",
        "allot.core.model",
        "numpy.typing",
        "allot.cli",
    ]
    assert [str(imp) for imp in found if not core_may_import(imp)] == [
        "src/allot/core/bad.py:2: imports time",
        "src/allot/core/bad.py:3: imports datetime.datetime",
        "src/allot/core/bad.py:4: imports allot.sim.engine",
        "src/allot/core/bad.py:6: imports numpy.typing",
        "src/allot/core/bad.py:7: imports allot.cli",
    ]
    assert [imp.module for imp in found if not sim_may_import(imp)] == ["allot.cli"]


def test_sim_may_read_yaml_but_not_draw_for_a_terminal() -> None:
    report = PACKAGE / "sim" / "report.py"
    assert sim_may_import(Import("yaml", report, 1))
    assert not sim_may_import(Import("rich.table.Table", report, 1))


def test_module_names_follow_the_files() -> None:
    policy = PACKAGE / "core" / "policy"
    assert module_name(policy / "__init__.py") == "allot.core.policy"
    assert module_name(policy / "backfill.py") == "allot.core.policy.backfill"


def test_no_grab_bag_modules() -> None:
    found = sorted(
        str(p.relative_to(SRC.parent)) for p in SRC.rglob("*.py") if p.name in GRAB_BAG_NAMES
    )
    assert not found, "name a module by the domain noun it owns, not " + ", ".join(found)


# Empty package markers; each should say in a line or two what its package owns.
def _docstring_cases() -> list[object]:
    return [pytest.param(path, id=path.relative_to(SRC).as_posix()) for path in modules()]


@pytest.mark.parametrize("path", _docstring_cases())
def test_every_module_has_a_docstring(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstring = ast.get_docstring(tree)
    assert docstring, f"{path.relative_to(SRC.parent)}: module has no docstring"
