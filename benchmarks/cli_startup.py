"""How fast the ``allot`` command starts: wall time of whole processes, as a shell sees them.

Times ``allot --help``, ``allot jobs --help``, ``allot submit --help``, ``allot jobs`` and
``allot submit -- true`` (both against a port nothing listens on: they fail fast, after
everything they import is loaded and one connection is refused), each the median of ``--runs``
runs in a fresh process, in wall time and in CPU time (user + system, which a busy machine
disturbs less); then the time spent importing (``python -X importtime``, the median
over the same number of runs) for ``import allot.cli.main`` alone and for ``allot jobs``, with
the heaviest packages each loads.
Target: ``allot --help``, ``allot jobs`` and ``allot submit`` under 250 ms. Two floor rows
say what no CLI built on the same libraries can beat here: the bare interpreter, and a
one-command Typer app that loads httpx, Pydantic and Rich's table and makes one refused request
(Typer builds a Pydantic validator for each option of the command it runs).

Bytecode caches are used as an installed package has them: the runs go without
``PYTHONDONTWRITEBYTECODE`` and one warm-up run precedes each command. The machine's load
shows in the figures: compare runs made on the same machine at the same time
(``--pythonpath OTHER/src`` times another checkout with this one's interpreter).

Run: ``.venv/bin/python benchmarks/cli_startup.py [--runs 21] [--pythonpath DIR]``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

TARGET_MS = 250.0
TARGETED = ("allot --help", "allot jobs", "allot submit -- true")

# The floor under `allot jobs`: a one-command Typer app with six options that loads the
# libraries the command needs (httpx, Pydantic, Rich's table) and makes one refused request,
# with no allot code at all. allot cannot start faster than this with these libraries.
FLOOR = """
import typer
app = typer.Typer()
@app.command()
def jobs(state: str = '', queue: str = '', user: str = '', limit: int = 50,
         all: bool = False, output: str = 'table') -> None:
    import os, httpx, pydantic, rich.table
    try:
        httpx.get(os.environ['ALLOT_URL'])
    except httpx.HTTPError:
        pass
app()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(pythonpath: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "COLUMNS")}
    # Nothing listens there: `allot jobs` is refused at once instead of waiting for a server.
    env["ALLOT_URL"] = f"http://127.0.0.1:{free_port()}"
    env.pop("ALLOT_TOKEN", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def time_command(
    args: list[str], runs: int, env: dict[str, str]
) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + system) of each run of ``python -m allot ARGS``,
    after one warm-up run. On a busy machine the CPU time says more than the wall time."""
    command = (
        [sys.executable, *args] if args[:1] == ["-c"] else [sys.executable, "-m", "allot", *args]
    )
    subprocess.run(command, env=env, capture_output=True, check=False)
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=False)
        wall.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, cpu


_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")


def import_profile(
    args: list[str], runs: int, env: dict[str, str]
) -> tuple[list[float], list[tuple[str, float]]]:
    """Seconds spent importing in each run of ``python -X importtime ARGS`` (after the
    interpreter's own start-up), and the packages outside the standard library it loads with
    their median cumulative seconds, heaviest first."""
    command = [sys.executable, "-X", "importtime", *args]
    totals: list[float] = []
    packages: dict[str, list[float]] = {}
    for _ in range(runs):
        stderr = subprocess.run(command, env=env, capture_output=True, text=True).stderr
        rows = [m for line in stderr.splitlines() if (m := _IMPORT_LINE.match(line))]
        # The interpreter's own start-up ends with `site`; what follows is the command's.
        ends = [i for i, m in enumerate(rows) if m.group(4) == "site" and not m.group(3)]
        rows = rows[ends[-1] + 1 :] if ends else rows
        totals.append(sum(int(m.group(2)) for m in rows if not m.group(3)) / 1e6)
        for m in rows:
            name = m.group(4)
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top.startswith("_"):
                continue
            if "." not in name or top == "allot":
                packages.setdefault(name, []).append(int(m.group(2)) / 1e6)
    heaviest = sorted(
        ((name, statistics.median(v)) for name, v in packages.items()), key=lambda p: -p[1]
    )
    return totals, heaviest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21, help="runs per command (median shown)")
    parser.add_argument("--pythonpath", help="import allot from here (another checkout's src)")
    options = parser.parse_args()
    env = environment(options.pythonpath)
    commands = {
        "allot --help": ["--help"],
        "allot jobs --help": ["jobs", "--help"],
        "allot submit --help": ["submit", "--help"],
        "allot jobs": ["jobs"],
        "allot submit -- true": ["submit", "--", "true"],
        "floor: python -c pass": ["-c", "pass"],
        "floor: one Typer command, same libraries": ["-c", FLOOR],
    }
    grid = Table(title=f"allot start-up, {options.runs} runs each")
    for header in ("command", "median ms", "min ms", "max ms", "CPU ms (median)", "target"):
        grid.add_column(header, justify="left" if header == "command" else "right")
    for label, args in commands.items():
        seconds, cpu = time_command(args, options.runs, env)
        median = statistics.median(seconds) * 1000
        target = "-"
        if label in TARGETED:
            target = f"< {TARGET_MS:.0f} ({'met' if median < TARGET_MS else 'missed'})"
        grid.add_row(
            label,
            f"{median:.0f}",
            f"{min(seconds) * 1000:.0f}",
            f"{max(seconds) * 1000:.0f}",
            f"{statistics.median(cpu) * 1000:.0f}",
            target,
        )
    console = Console(width=110)  # one row per command, also when piped
    profiles = {
        "import allot.cli.main": ["-c", "import allot.cli.main"],
        "imports of allot jobs": ["-m", "allot", "jobs"],
    }
    heaviest: dict[str, list[tuple[str, float]]] = {}
    for label, args in profiles.items():
        totals, heaviest[label] = import_profile(args, options.runs, env)
        grid.add_row(
            label,
            f"{statistics.median(totals) * 1000:.0f}",
            f"{min(totals) * 1000:.0f}",
            f"{max(totals) * 1000:.0f}",
            "-",
            "-",
        )
    console.print(grid)
    for label, packages in heaviest.items():
        console.print(f"heaviest packages under `{label}` (median ms, cumulative):")
        for name, seconds in packages[:8]:
            console.print(f"  {name:<32} {seconds * 1000:6.1f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(f"python {sys.version.split()[0]}, load average {load:.2f}, {Path.cwd()}")


if __name__ == "__main__":
    main()
