"""Where the allot server is and which token to send it: the one lookup the SDK (``Client()``,
``AsyncClient()``) and the ``allot`` command share.

Each of the URL and the token is taken from the first of these that gives one (an empty value
counts as not given):

1. the explicit argument (``Client(url, token)``; ``--url``/``--token`` on the command line);
2. the environment: ``ALLOT_URL`` and ``ALLOT_TOKEN``;
3. the URL ``http://127.0.0.1:8765``, where ``allot up`` listens by default, and the admin
   token a local ``allot up`` wrote into its data directory (``$ALLOT_DATA_DIR``, else
   ``$XDG_DATA_HOME/allot``, else ``~/.local/share/allot``).

Invariant: the admin token read from the data directory is only ever sent to a server on this
machine (a loopback address or ``localhost``); a server elsewhere gets no token unless one was
given. Standard library only, so the command line can find the server before it loads httpx.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from allot.datadir import default_data_dir, local_admin_token

DEFAULT_URL = "http://127.0.0.1:8765"


class EndpointError(ValueError):
    """The server's URL is not usable; ``field`` names where it came from (the argument or
    ``ALLOT_URL``)."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The server to call and the token to send it (None: send none). ``token_source`` says
    where the token came from, for messages (never the token itself)."""

    url: str
    token: str | None
    token_source: str


def is_local(url: str) -> bool:
    """True when ``url`` names a server on this machine: ``localhost`` or a loopback address."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def find_endpoint(
    url: str | None = None, token: str | None = None, *, url_field: str = "url"
) -> Endpoint:
    """The server and token by the lookup order above. ``url_field`` is what the explicit URL
    is called in messages (``--url`` on the command line). Raises EndpointError for a URL that
    is not http(s) with a host."""
    field = url_field if url else "ALLOT_URL"
    chosen = (url or os.environ.get("ALLOT_URL") or DEFAULT_URL).rstrip("/")
    parts = urlsplit(chosen)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(field, f"must be an http(s) URL such as {DEFAULT_URL}, got {chosen!r}")
    if token:
        return Endpoint(chosen, token, "the token given")
    if from_env := os.environ.get("ALLOT_TOKEN"):
        return Endpoint(chosen, from_env, "ALLOT_TOKEN")
    if is_local(chosen):
        data_dir = default_data_dir()
        if found := local_admin_token(data_dir):
            return Endpoint(chosen, found, f"the admin token in {data_dir}")
    return Endpoint(chosen, None, "no token")
