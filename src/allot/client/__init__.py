"""The allot SDK: ``Client`` (synchronous) and ``AsyncClient`` talk to an allot server over its
REST API with httpx, and return the API's own wire models (``JobOut``, ``JobPage``, ...).

    from allot.client import Client, Dependency, JobSubmission, TaskResources

    with Client() as allot:  # ALLOT_URL and ALLOT_TOKEN from the environment
        job = allot.submit(JobSubmission(command=["python", "train.py"],
                                         resources=TaskResources(gpus=1)))
        for text in allot.follow_logs(job.id):
            print(text, end="")
        # Runs once the first job has succeeded (``condition`` "failed" or "any" otherwise).
        allot.submit(JobSubmission(command=["python", "eval.py"], after=[Dependency(job=job.id)]))

Failures raise ``ApiError`` subclasses: ``Invalid``, ``NotFound``, ``Conflict``,
``Unauthorized``, ``ServerError`` and ``Unreachable``. The SDK imports httpx, Pydantic and
``allot.wire.schemas`` only, so it needs neither FastAPI nor the server's code.
"""

from __future__ import annotations

from allot.client._async import AsyncClient
from allot.client._errors import (
    ApiError,
    Conflict,
    Invalid,
    NotFound,
    ServerError,
    Unauthorized,
    Unreachable,
)
from allot.client._routes import DEFAULT_URL
from allot.client._sync import Client
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

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "AsyncClient",
    "Client",
    "Conflict",
    "Dependency",
    "EventOut",
    "ExplainOut",
    "FieldProblem",
    "Health",
    "Invalid",
    "JobOut",
    "JobPage",
    "JobSubmission",
    "LogChunkOut",
    "NodeOut",
    "NotFound",
    "PlacementOut",
    "QueueOut",
    "ResourcesOut",
    "RunOut",
    "ServerError",
    "TaskResources",
    "Unauthorized",
    "Unreachable",
]
