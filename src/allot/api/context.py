"""What routes act on: ``create_app`` keeps the control plane in the application's state and
routes receive it through the ``Control`` dependency, so route modules hold no globals. Single
submissions go through the ``Intake`` dependency, the app's group-commit writer
(``allot.control.intake``), started on first use and closed when the app shuts down.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from allot.control.intake import SubmissionIntake
from allot.control.services import ControlPlane

_starting = threading.Lock()


async def control_plane(request: Request) -> ControlPlane:
    """The control plane the application was created over. ``async`` although it only reads
    an attribute: FastAPI runs a plain ``def`` dependency on a worker thread, and those hops
    cost more than the request's own work."""
    control: ControlPlane = request.app.state.control
    return control


async def submission_intake(request: Request) -> SubmissionIntake:
    """The app's submission intake, started on the first submission."""
    return intake_of(request.app)


def intake_of(app: FastAPI) -> SubmissionIntake:
    """``app``'s submission intake (started now if it was not yet)."""
    intake: SubmissionIntake | None = app.state.intake
    if intake is None:
        with _starting:
            intake = app.state.intake
            if intake is None:
                intake = app.state.intake = SubmissionIntake(app.state.control)
    return intake


def close_intake(app: FastAPI) -> None:
    """Store what the intake holds and stop it (a no-op when it never started)."""
    intake: SubmissionIntake | None = app.state.intake
    if intake is not None:
        intake.close()


Control = Annotated[ControlPlane, Depends(control_plane)]
Intake = Annotated[SubmissionIntake, Depends(submission_intake)]
