"""``allot admin``: its sub-commands are listed from their table (which matches each one's
docstring), their help shows metavars and never Python types, and quotas on the command line
are read as ``FLAVOR:RESOURCE=NOMINAL[:BORROWING_LIMIT]`` or refused naming the form."""

from __future__ import annotations

import importlib
import inspect

import pytest
from typer.testing import CliRunner

from allot.cli.admin import ADMIN_COMMANDS
from allot.cli.main import app
from allot.client._admin import quota_spec


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, ["admin", *args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", ["", *ADMIN_COMMANDS])
def test_admin_help_shows_metavars_never_python_types(command: str) -> None:
    text = _help(*([command] if command else []))
    for junk in ("<bool>", "<int", "<float>", "<str>", "list[", "{", "range>", "--no-"):
        assert junk not in text, f"allot admin {command} --help shows {junk!r}"


def test_the_admin_list_matches_each_command() -> None:
    listed = _help()
    for name, entry in ADMIN_COMMANDS.items():
        module, _, attr = entry.target.partition(":")
        doc = inspect.getdoc(getattr(importlib.import_module(module), attr)) or ""
        assert doc.splitlines()[0] == entry.help, name
        assert name in listed


def test_quotas_are_read_from_the_command_line_form() -> None:
    quotas = quota_spec(["H100-80G:gpu=8:4", "H100-80G:cpu=64", "A100:memory_mib=1024"])
    assert quotas["H100-80G"]["gpu"].nominal == 8
    assert quotas["H100-80G"]["gpu"].borrowing_limit == 4
    assert quotas["H100-80G"]["cpu"].borrowing_limit is None
    assert quotas["A100"]["memory_mib"].nominal == 1024
    for bad in ("H100:gpus=1", "H100", "H100:gpu=", "H100:gpu=x"):
        with pytest.raises(ValueError, match=r"FLAVOR:RESOURCE=NOMINAL|numbers"):
            quota_spec([bad])


def test_a_bad_quota_is_an_input_error_before_any_request() -> None:
    result = CliRunner().invoke(app, ["admin", "grant", "vision", "--quota", "H100:gpus=1"])
    assert result.exit_code == 2
    assert "--quota: 'H100:gpus=1': write FLAVOR:RESOURCE=NOMINAL" in result.stderr
