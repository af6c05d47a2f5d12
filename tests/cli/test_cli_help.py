"""How the ``allot`` command presents itself: one usage style (``JOB_ID``, ``[JOB.yaml]``,
``...`` for repeats), a metavar for every option and no Python types in any help, the
commands listed from a table that matches each command's docstring, and a start that
imports nothing heavy (checked in fresh interpreters; the speed itself is measured by
benchmarks/cli_startup.py, never asserted)."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from allot.cli.main import COMMANDS, app

HEAVY = ("matplotlib", "pandas", "numpy", "allot.sim", "fastapi", "uvicorn", "sqlalchemy")


def help_of(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


def usage_of(*args: str) -> str:
    line = next(line for line in help_of(*args).splitlines() if "Usage:" in line)
    return " ".join(line.split()[1:])


def test_usage_lines_share_one_style() -> None:
    assert usage_of("submit") == "allot submit [OPTIONS] [JOB.yaml] [-- COMMAND...]"
    for command in ("cancel", "hold", "release"):
        assert usage_of(command) == f"allot {command} [OPTIONS] JOB_ID..."
    for command in ("show", "logs", "explain"):
        assert usage_of(command) == f"allot {command} [OPTIONS] JOB_ID"
    assert usage_of("drain") == "allot drain [OPTIONS] NODE"
    assert usage_of("jobs") == "allot jobs [OPTIONS]"
    assert usage_of() == "allot [OPTIONS] COMMAND [ARGS]..."


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_metavars_never_python_types(command: str) -> None:
    text = help_of(*([command] if command else []))
    for junk in ("<bool>", "<int", "<float>", "<str>", "<path>", "list[", "{", "range>"):
        assert junk not in text, f"allot {command} --help shows {junk!r}"


def test_options_read_as_their_values() -> None:
    submit = help_of("submit")
    for option, metavar in (
        ("--gpus", "N"),
        ("--env", "K=V"),
        ("--time-limit", "DURATION"),
        ("--name", "NAME"),
        ("--workdir", "DIR"),
        ("--output", "FORMAT"),
    ):
        line = next(line for line in submit.splitlines() if f"│ {option} " in line)
        assert f" {metavar} " in line, line
    limit = next(line for line in help_of("jobs").splitlines() if "│ --limit " in line)
    assert " N " in limit


def test_the_command_list_matches_each_command() -> None:
    listed = help_of()
    for name, entry in COMMANDS.items():
        module, _, attr = entry.target.partition(":")
        function = getattr(importlib.import_module(module), attr)
        if isinstance(function, typer.Typer):  # a group of sub-commands: its own help
            doc = str(function.info.help)
        else:
            doc = inspect.getdoc(function) or ""
        assert doc.splitlines()[0] == entry.help, name
        assert name in listed
        assert entry.help.split(",")[0] in listed


def test_a_mistyped_command_is_told_its_neighbour() -> None:
    result = CliRunner().invoke(app, ["job"])
    assert result.exit_code == 2
    assert "Did you mean 'jobs'" in result.output


def _loaded_after(*args: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``allot ARGS``."""
    probe = (
        "import sys\n"
        f"sys.argv = ['allot', *{list(args)!r}]\n"
        "from allot.cli.main import app\n"
        "try:\n"
        "    app()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "ALLOT_URL": "http://127.0.0.1:9"}  # nothing there: fails at once
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    return set(result.stdout.split("\n")[-2].split())


def _heavy(loaded: set[str], names: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(n for n in names if n in loaded or any(m.startswith(n + ".") for m in loaded))


def test_importing_the_command_imports_nothing_heavy() -> None:
    probe = "import sys, allot.cli.main; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    loaded = set(result.stdout.split())
    assert "allot.cli.main" in loaded
    assert _heavy(loaded, (*HEAVY, "httpx", "pydantic", "allot.cli.jobs")) == []


def test_each_command_loads_only_what_it_needs() -> None:
    for args in (["--help"], ["jobs", "--help"], ["submit", "--help"], ["simulate", "--help"]):
        assert _heavy(_loaded_after(*args), (*HEAVY, "httpx", "pydantic", "yaml")) == [], args
    assert _heavy(_loaded_after("jobs"), (*HEAVY, "yaml", "asyncio")) == []
    assert _heavy(_loaded_after("submit", "--", "true"), (*HEAVY, "asyncio")) == []
