"""Where jobs may run: ``WorkdirRule`` says which working directories a submission may name.

The server's data directory (its database, tokens and the tasks' own files) is never allowed,
nor anything inside it; when the site lists allowed roots (``allot up --workdir-root``), a
working directory must be inside one of them. Paths are compared after resolving symbolic
links and ``..``, so a link into a forbidden folder is refused too. A job that names no
working directory runs where the executor puts it, which is always allowed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WorkdirRule:
    """Forbidden folders and, when not None, the only roots allowed."""

    forbidden: tuple[str, ...] = ()
    allowed: tuple[str, ...] | None = None

    @classmethod
    def of(cls, forbidden: list[str], allowed: list[str] | None) -> WorkdirRule:
        """A rule over these folders (resolved now)."""
        resolved = tuple(os.path.realpath(p) for p in forbidden)
        roots = None if not allowed else tuple(os.path.realpath(p) for p in allowed)
        return cls(resolved, roots)

    def problem(self, workdir: str | None) -> str | None:
        """Why ``workdir`` is refused, or None when it is allowed."""
        if workdir is None:
            return None
        real = os.path.realpath(workdir)
        for folder in self.forbidden:
            if _inside(real, folder):
                return "must not be inside the server's data directory"
        if self.allowed is not None and not any(_inside(real, root) for root in self.allowed):
            return f"must be inside one of the allowed roots: {', '.join(self.allowed)}"
        return None


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
