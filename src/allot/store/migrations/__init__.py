"""Alembic migrations of the store's schema, shipped inside the package.

``alembic_config`` builds the Alembic configuration in code (no ``alembic.ini`` is needed):
``script_location`` is this folder, and the migrations run on the connection handed in, inside
its transaction. A new revision is drafted from the models with
``alembic.command.revision(alembic_config(url), autogenerate=True, message=...)`` against a
database at the previous head, then reviewed by hand. ``tests/store/test_store_migrations.py``
checks that the migrations and ``tables.py`` agree; ``test_store_migration_tasks.py`` that
revision 0002 carries the rows of a 0001 database over.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy import URL, Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(url: URL, connection: Connection | None = None) -> Config:
    """An Alembic configuration for the database at ``url``; with ``connection``, migrations
    run on it (and in its transaction) instead of on a new connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # configparser interpolates "%"; a URL-encoded password may contain it.
    config.set_main_option(
        "sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%")
    )
    if connection is not None:
        config.attributes["connection"] = connection
    return config
