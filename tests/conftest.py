"""Shared fixtures: where the public cluster traces live."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def traces_dir() -> Path:
    """``../shared/traces`` next to the repository; skips the test when the folder is absent."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "traces"
    if not path.is_dir():
        pytest.skip("needs ../shared/traces (public cluster traces) — folder absent")
    return path
