"""Alembic environment: runs the migrations online, on the connection the store hands in
(``config.attributes["connection"]``) or else on a new one to ``sqlalchemy.url``.

SQLite cannot alter most table properties in place, so migrations render as batch operations
(copy the table, alter, swap) there.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from allot.store.tables import Base


def run_on(connection: Connection) -> None:
    """Run the pending migrations on ``connection``."""
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run on the given connection, or open one for the configured URL."""
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        run_on(given)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("sqlalchemy.url: the Alembic configuration names no database")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            run_on(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; run them online")
run_online()
