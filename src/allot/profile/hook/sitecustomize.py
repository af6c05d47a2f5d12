"""Runs the PyTorch profiler over a window of optimizer steps in a profiled allot task.

Python imports ``sitecustomize`` at start-up from the first folder on ``sys.path`` that has
one; allot puts this folder first on a profiled task's ``PYTHONPATH``. With
``ALLOT_PROFILE_DIR`` set, this module waits (an import hook, nothing else) until the program
imports ``torch.optim.optimizer``, then registers a global optimizer step hook:
- a step is one ``step()`` of the first optimizer that steps (others are not counted);
- after the first ``ALLOT_PROFILE_SKIP`` steps (at least one) and one warm-up step, the
  next ``ALLOT_PROFILE_STEPS`` are recorded (CPU and, when present, CUDA activity, with
  shapes and memory), exported to ``trace-rank<RANK>-<pid>.json.gz`` in that folder, and the
  profiler is stopped, so the rest of the run is not slowed;
- ``meta.json`` tells the rank, the device, the window and the steps seen, rewritten at exit
  with the total and the mean step time outside the window.

Any other ``sitecustomize`` further along ``sys.path`` (a distribution's own) still runs.
Standard library and PyTorch only: the task's Python may not have allot installed. Any
failure here is reported on stderr and never stops the task.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import time
from types import ModuleType
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))


def _say(message: str) -> None:
    print(f"allot profile: {message}", file=sys.stderr, flush=True)


class _Session:
    """The profiling of one process."""

    def __init__(self, directory: str, steps: int, skip: int) -> None:
        self.directory = directory
        self.steps = max(1, steps)
        self.skip = max(1, skip)
        self.rank = os.environ.get("RANK", "0")
        self.count = 0
        self.optimizer: int | None = None
        self.profiler: Any = None
        self.done = False
        self.trace = ""
        self.stamps: list[float] = []
        self.device = "cpu"

    def on_step(self, optimizer: object, args: object, kwargs: object) -> None:
        try:
            self._step(optimizer)
        except Exception as exc:  # never let profiling break the job
            _say(f"profiling stopped: {exc!r}")
            self.done = True

    def _step(self, optimizer: object) -> None:
        if self.optimizer is None:
            self.optimizer = id(optimizer)
        if id(optimizer) != self.optimizer:
            return
        self.count += 1
        self.stamps.append(time.perf_counter())
        if self.done:
            return
        if self.profiler is None:
            self._start()
        else:
            self.profiler.step()

    def _start(self) -> None:
        import torch
        from torch.profiler import ProfilerActivity, profile, schedule

        activities = [ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
            self.device = torch.cuda.get_device_name(torch.cuda.current_device())
        os.makedirs(self.directory, exist_ok=True)
        self.profiler = profile(
            activities=activities,
            schedule=schedule(wait=self.skip - 1, warmup=1, active=self.steps, repeat=1),
            on_trace_ready=self._export,
            record_shapes=True,
            profile_memory=True,
        )
        self.profiler.start()
        self._write_meta()

    def _export(self, prof: Any) -> None:
        name = f"trace-rank{self.rank}-{os.getpid()}.json.gz"
        self.trace = os.path.join(self.directory, name)
        prof.export_chrome_trace(self.trace)
        self.done = True
        self._write_meta()
        _say(f"recorded steps {self.skip + 2}-{self.skip + 1 + self.steps} into {self.trace}")

    def stop(self) -> None:
        if self.profiler is not None and not self.done:
            _say(f"the run ended after {self.count} steps, before the profiled window")
        if self.profiler is not None:
            with contextlib.suppress(Exception):  # stopped already
                self.profiler.stop()
        self._write_meta()

    def _write_meta(self) -> None:
        # Steps outside the profiled window (and its warm-up), which the profiler slows.
        window = range(self.skip, self.skip + self.steps + 2)
        gaps = [
            b - a
            for i, (a, b) in enumerate(zip(self.stamps, self.stamps[1:], strict=False))
            if i + 1 not in window
        ]
        meta = {
            "rank": int(self.rank) if self.rank.isdigit() else 0,
            "pid": os.getpid(),
            "device": self.device,
            "skip": self.skip,
            "steps": self.steps,
            "total_steps": self.count,
            "mean_step_seconds": sum(gaps) / len(gaps) if gaps else None,
            "trace": os.path.basename(self.trace) if self.trace else None,
        }
        path = os.path.join(self.directory, f"meta-rank{meta['rank']}-{os.getpid()}.json")
        tmp = f"{path}.tmp"
        with open(tmp, "w") as out:
            json.dump(meta, out)
        os.replace(tmp, path)


class _WatchOptimizers(importlib.abc.MetaPathFinder):
    """Waits for ``torch.optim.optimizer`` and hooks its global step hook when it loads."""

    def __init__(self, session: _Session) -> None:
        self.session = session

    def find_spec(
        self, fullname: str, path: Any, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "torch.optim.optimizer":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        load = loader.exec_module
        session = self.session

        def exec_module(module: ModuleType) -> None:
            load(module)
            try:
                module.register_optimizer_step_post_hook(session.on_step)
                atexit.register(session.stop)
            except Exception as exc:
                _say(f"cannot hook the optimizer: {exc!r}")

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _chain() -> None:
    """Run the ``sitecustomize`` this one hides, if any."""
    for folder in sys.path:
        if not folder or os.path.abspath(folder) == _HERE:
            continue
        candidate = os.path.join(folder, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_allot_next_sitecustomize", candidate)
            if spec is not None and spec.loader is not None:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


def _install() -> None:
    directory = os.environ.get("ALLOT_PROFILE_DIR")
    if not directory:
        return
    try:
        steps = int(os.environ.get("ALLOT_PROFILE_STEPS", "5"))
        skip = int(os.environ.get("ALLOT_PROFILE_SKIP", "3"))
    except ValueError:
        _say("ALLOT_PROFILE_STEPS and ALLOT_PROFILE_SKIP must be integers; not profiling")
        return
    sys.meta_path.insert(0, _WatchOptimizers(_Session(directory, steps, skip)))


try:
    _install()
    _chain()
except Exception as exc:  # a broken hook must never stop the task
    _say(f"not profiling: {exc!r}")
