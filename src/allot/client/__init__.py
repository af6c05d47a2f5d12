"""The allot SDK: ``Client`` (synchronous) and ``AsyncClient`` talk to an allot server over its
REST API with httpx, and return the API's own wire models (``JobOut``, ``JobPage``, ...).

    from allot.client import Client, Dependency, JobSubmission, TaskResources

    with Client() as allot:  # a local `allot up`, or ALLOT_URL and ALLOT_TOKEN
        job = allot.submit(JobSubmission(command=["python", "train.py"],
                                         resources=TaskResources(gpus=1)))
        for text in allot.follow_logs(job.id):
            print(text, end="")
        # Runs once the first job has succeeded (``condition`` "failed" or "any" otherwise).
        allot.submit(JobSubmission(command=["python", "eval.py"], after=[Dependency(job=job.id)]))

``Client()`` and ``AsyncClient()`` find the server as the ``allot`` command does: the
arguments, else ``ALLOT_URL`` and ``ALLOT_TOKEN``, else ``http://127.0.0.1:8765`` with the admin
token a local ``allot up`` wrote into its data directory (sent only to a server on this
machine); ``find_endpoint()`` tells what they would use.

Failures raise ``ApiError`` subclasses: ``Invalid``, ``NotFound``, ``Conflict``,
``Unauthorized`` (and its ``Forbidden``, for a role that does not allow the call),
``RateLimited``, ``ServerError`` and ``Unreachable``. The SDK imports httpx, Pydantic,
``allot.wire.schemas`` and ``allot.datadir`` only, so it needs neither FastAPI nor the server's
code. Each name is loaded on first use: ``import allot.client`` costs nothing until a client,
an error class or a wire model is asked for (the ``allot`` command starts faster for it).
"""

from __future__ import annotations

import importlib
import typing

from allot.client._endpoint import DEFAULT_URL, Endpoint, EndpointError, find_endpoint

if typing.TYPE_CHECKING:
    from allot.client._async import AsyncClient
    from allot.client._errors import (
        ApiError,
        Conflict,
        Forbidden,
        Invalid,
        NotFound,
        RateLimited,
        ServerError,
        Unauthorized,
        Unreachable,
    )
    from allot.client._sync import Client
    from allot.wire.metering import BudgetOut, JobCostOut, UsageReportOut
    from allot.wire.profiling import (
        FlavorSpeedOut,
        MeasurementIn,
        NodeCheckIn,
        NodeCheckOut,
        ProfileOut,
        ProfileSettings,
        RecommendationOut,
        RecommendRequest,
    )
    from allot.wire.schemas import (
        Dependency,
        EventOut,
        ExplainOut,
        FieldProblem,
        Health,
        JobOut,
        JobPage,
        JobSubmission,
        LogChunkOut,
        NodeOut,
        PlacementOut,
        QueueOut,
        ResourcesOut,
        RunOut,
        TaskResources,
    )

# Where each lazily loaded name is defined.
_HOMES = {
    "AsyncClient": "allot.client._async",
    "Client": "allot.client._sync",
    "ApiError": "allot.client._errors",
    "Conflict": "allot.client._errors",
    "Forbidden": "allot.client._errors",
    "RateLimited": "allot.client._errors",
    "Invalid": "allot.client._errors",
    "NotFound": "allot.client._errors",
    "ServerError": "allot.client._errors",
    "Unauthorized": "allot.client._errors",
    "Unreachable": "allot.client._errors",
    "Dependency": "allot.wire.schemas",
    "EventOut": "allot.wire.schemas",
    "ExplainOut": "allot.wire.schemas",
    "FieldProblem": "allot.wire.schemas",
    "Health": "allot.wire.schemas",
    "JobOut": "allot.wire.schemas",
    "JobPage": "allot.wire.schemas",
    "JobSubmission": "allot.wire.schemas",
    "LogChunkOut": "allot.wire.schemas",
    "NodeOut": "allot.wire.schemas",
    "PlacementOut": "allot.wire.schemas",
    "QueueOut": "allot.wire.schemas",
    "ResourcesOut": "allot.wire.schemas",
    "RunOut": "allot.wire.schemas",
    "TaskResources": "allot.wire.schemas",
    "FlavorSpeedOut": "allot.wire.profiling",
    "NodeCheckIn": "allot.wire.profiling",
    "NodeCheckOut": "allot.wire.profiling",
    "ProfileOut": "allot.wire.profiling",
    "ProfileSettings": "allot.wire.profiling",
    "RecommendationOut": "allot.wire.profiling",
    "RecommendRequest": "allot.wire.profiling",
    "MeasurementIn": "allot.wire.profiling",
    "BudgetOut": "allot.wire.metering",
    "JobCostOut": "allot.wire.metering",
    "UsageReportOut": "allot.wire.metering",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'allot.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "AsyncClient",
    "BudgetOut",
    "Client",
    "Conflict",
    "Dependency",
    "Endpoint",
    "EndpointError",
    "EventOut",
    "ExplainOut",
    "FieldProblem",
    "FlavorSpeedOut",
    "Forbidden",
    "Health",
    "Invalid",
    "JobCostOut",
    "JobOut",
    "JobPage",
    "JobSubmission",
    "LogChunkOut",
    "MeasurementIn",
    "NodeCheckIn",
    "NodeCheckOut",
    "NodeOut",
    "NotFound",
    "PlacementOut",
    "ProfileOut",
    "ProfileSettings",
    "QueueOut",
    "RateLimited",
    "RecommendRequest",
    "RecommendationOut",
    "ResourcesOut",
    "RunOut",
    "ServerError",
    "TaskResources",
    "Unauthorized",
    "Unreachable",
    "UsageReportOut",
    "find_endpoint",
]
