"""The one error of file input: ``ConfigError`` names the file, the line and the field."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad input in a file (quota, cluster, job or trace file); the message names the file,
    the 1-based line and the field."""

    def __init__(
        self, path: str, message: str, *, line: int | None = None, field: str = ""
    ) -> None:
        where = path if line is None else f"{path}:{line}"
        what = f" field {field!r}:" if field else ""
        super().__init__(f"{where}:{what} {message}")
        self.path = path
        self.line = line
        self.field = field
