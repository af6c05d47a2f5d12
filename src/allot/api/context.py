"""The control plane a request acts on: ``create_app`` keeps it in the application's state and
routes receive it through the ``Control`` dependency, so route modules hold no globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from allot.control.services import ControlPlane


async def control_plane(request: Request) -> ControlPlane:
    """The control plane the application was created over. ``async`` although it only reads
    an attribute: FastAPI runs a plain ``def`` dependency on a worker thread, and those hops
    cost more than the request's own work."""
    control: ControlPlane = request.app.state.control
    return control


Control = Annotated[ControlPlane, Depends(control_plane)]
