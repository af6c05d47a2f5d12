"""How a profiled task is run under the PyTorch profiler, from the executor's side.

A task of a job submitted with ``--profile`` gets three variables and one path:
``ALLOT_PROFILE_DIR`` (where its traces go: a ``profile`` folder in the task's own directory),
``ALLOT_PROFILE_STEPS`` and ``ALLOT_PROFILE_SKIP`` (the window: how many steps to record after
how many), and the ``hook`` folder first on ``PYTHONPATH``, so every Python process of the task
loads ``allot/profile/hook/sitecustomize.py``. That hook does nothing until the program
imports PyTorch's optimizers; then it counts optimizer steps, records the window with the
profiler and writes ``trace-rank<R>-<pid>.json.gz`` and ``meta.json``. A program without
PyTorch runs exactly as it would without ``--profile``.

Standard library only: the executor imports this.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DIR_VARIABLE = "ALLOT_PROFILE_DIR"
STEPS_VARIABLE = "ALLOT_PROFILE_STEPS"
SKIP_VARIABLE = "ALLOT_PROFILE_SKIP"
HOOK_DIR = Path(__file__).resolve().with_name("hook")
PROFILE_FOLDER = "profile"  # inside a task's directory
META_FILE = "meta.json"
DEFAULT_STEPS = 5
DEFAULT_SKIP = 3


def profile_environment(
    env: Mapping[str, str], directory: str | Path, *, steps: int, skip: int
) -> dict[str, str]:
    """``env`` with what a profiled task needs (see the module docstring)."""
    out = dict(env)
    out[DIR_VARIABLE] = str(directory)
    out[STEPS_VARIABLE] = str(steps)
    out[SKIP_VARIABLE] = str(skip)
    path = [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(HOOK_DIR)]
    out["PYTHONPATH"] = os.pathsep.join([str(HOOK_DIR), *path])
    return out
