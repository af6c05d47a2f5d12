"""Executors: adapters that carry out the control plane's decisions on machines, behind
``allot.control.ports.Executor``. ``LocalExecutor`` runs each task as a detached process
group on this machine, supervised by ``allot.executors.runner``; ``detect`` reports what the
machine offers.

The names below load on first use, so ``python -m allot.executors.runner`` (which imports
this package first) starts without the control plane's modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from allot.executors.inventory import Inventory, detect
    from allot.executors.local import LocalExecutor

__all__ = ["Inventory", "LocalExecutor", "detect"]


def __getattr__(name: str) -> object:
    if name == "LocalExecutor":
        from allot.executors.local import LocalExecutor

        return LocalExecutor
    if name in ("Inventory", "detect"):
        from allot.executors import inventory

        return getattr(inventory, name)
    raise AttributeError(f"module 'allot.executors' has no attribute {name!r}")
