"""The REST API (FastAPI, versioned under ``/v1``): ``create_app(control)`` builds it.

Modules: ``wire`` (records to the wire models of ``allot.wire.schemas`` and back),
``problems`` (errors as RFC 9457 problem details), ``auth`` (bearer tokens), ``body_limit``,
``context`` and ``routes/`` (thin routes over ``ControlPlane``).

``create_app`` is imported lazily, so importing ``allot.api`` for a type does not import FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from allot.api.app import create_app


def __getattr__(name: str) -> object:
    if name == "create_app":
        from allot.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_app"]
