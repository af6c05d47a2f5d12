"""The durable store: jobs, runs and their allocations, nodes, quotas, tokens and the event
log, on SQLite (the embedded default) or PostgreSQL, with Alembic migrations.

``SqlStore`` implements ``allot.control.ports.Store``; ``default_database_url`` names the
SQLite file in a data directory. Modules: ``tables`` (the schema), ``sql`` (the store and its
transactions), ``jobs``, ``runs``, ``cluster``, ``quotas``, ``tokens``, ``events`` (one concern
each, run inside the store's transactions), ``reads`` (rows back to records), ``migrations``.
"""

from __future__ import annotations

from allot.store.sql import SqlStore, default_database_url

__all__ = ["SqlStore", "default_database_url"]
