"""A server run from a virtual environment gives its tasks that environment as if activated."""

from __future__ import annotations

from allot.executors.environment import server_python


def test_a_virtualenv_server_puts_its_bin_first_once() -> None:
    env = server_python(
        {"PATH": "/usr/bin:/venv/bin:/bin", "HOME": "/h"}, prefix="/venv", base_prefix="/usr"
    )
    assert env == {"PATH": "/venv/bin:/usr/bin:/bin", "HOME": "/h", "VIRTUAL_ENV": "/venv"}


def test_a_server_outside_a_virtualenv_changes_nothing() -> None:
    env = {"PATH": "/usr/bin"}
    assert server_python(env, prefix="/usr", base_prefix="/usr") == env
