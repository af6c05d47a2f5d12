"""Where allot keeps its data on this machine, and the admin token file inside it.

``allot up`` writes there; the SDK and the CLI read the token from there (through
``allot.client._endpoint``, the one lookup of server and token). Standard library only: the
client imports it, and the ``allot`` command must start fast.
"""

from __future__ import annotations

import os
from pathlib import Path

TOKEN_FILE = "admin-token"


def default_data_dir() -> Path:
    """``$ALLOT_DATA_DIR``, else ``$XDG_DATA_HOME/allot``, else ``~/.local/share/allot``."""
    if explicit := os.environ.get("ALLOT_DATA_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "allot"


def local_admin_token(data_dir: Path | None = None) -> str | None:
    """The admin token a local ``allot up`` wrote, if this user can read it."""
    path = (data_dir or default_data_dir()) / TOKEN_FILE
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
