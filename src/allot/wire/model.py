"""The base of every wire model: an answer's validator is built when it is first used, not
when its module is imported, so a CLI command pays only for the answers it reads. Request bodies
(``extra="forbid"``) are built at once: FastAPI declares them as it imports its routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """A Pydantic model whose validator and serializer are built on first use."""

    model_config = ConfigDict(defer_build=True)
