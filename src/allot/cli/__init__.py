"""The ``allot`` command line (``allot.cli.main``), over the SDK only.

Pydantic looks for plugins among every installed package's entry points the first time a model
is built (about 45 ms of each command's start-up); the CLI uses none, so it turns the search
off unless the user set ``PYDANTIC_DISABLE_PLUGINS`` themselves. ``allot up`` takes the setting
back before it starts the server, so neither the server nor its tasks inherit it.
"""

import os

PLUGINS_OFF_HERE = "PYDANTIC_DISABLE_PLUGINS" not in os.environ
if PLUGINS_OFF_HERE:
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"


def restore_plugins() -> None:
    """Undo the CLI's own ``PYDANTIC_DISABLE_PLUGINS`` (before starting the server)."""
    if PLUGINS_OFF_HERE:
        os.environ.pop("PYDANTIC_DISABLE_PLUGINS", None)
