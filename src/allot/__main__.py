"""``python -m allot``: the same as the ``allot`` command."""

from allot.cli.main import app

app()
