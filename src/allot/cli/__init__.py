"""The ``allot`` command line (Typer + Rich)."""
