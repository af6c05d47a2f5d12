"""Migrations: they build the schema on an empty database, run twice harmlessly, undo cleanly,
and agree with the models in ``allot.store.tables``; SQLite gets its durability settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, make_url, text

from allot.store import SqlStore, default_database_url
from allot.store.migrations import MIGRATIONS_DIR, alembic_config
from allot.store.tables import Base

TABLES = {
    "allocations",
    "api_tokens",
    "audit_log",
    "cohorts",
    "events",
    "flavor_speeds",
    "gpu_summaries",
    "job_dependencies",
    "jobs",
    "node_checks",
    "memberships",
    "nodes",
    "queues",
    "quota_settings",
    "runs",
    "tasks",
    "tenant_grants",
    "tenants",
    "usage_daily",
    "usage_records",
    "users",
}


def test_migrate_builds_every_table_on_an_empty_database(database_url: str) -> None:
    store = SqlStore(database_url)
    try:
        assert set(inspect(store.engine).get_table_names()) == set()
        store.migrate()
        assert set(inspect(store.engine).get_table_names()) == TABLES | {"alembic_version"}
    finally:
        store.close()


def test_migrate_twice_changes_nothing(store: SqlStore) -> None:
    store.migrate()
    with store.engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert versions == [
        ScriptDirectory.from_config(alembic_config(store.engine.url)).get_current_head()
    ]
    assert set(inspect(store.engine).get_table_names()) == TABLES | {"alembic_version"}


def test_the_migrations_match_the_models(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_downgrade_to_base_then_upgrade_again(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        command.downgrade(alembic_config(store.engine.url, conn), "base")
    assert set(inspect(store.engine).get_table_names()) == {"alembic_version"}
    store.migrate()
    assert set(inspect(store.engine).get_table_names()) == TABLES | {"alembic_version"}


def test_migrate_by_url_without_a_connection(database_url: str) -> None:
    # The path the ``alembic`` command line would take: env.py opens its own connection.
    command.upgrade(alembic_config(make_url(database_url)), "head")
    store = SqlStore(database_url)
    try:
        assert set(inspect(store.engine).get_table_names()) == TABLES | {"alembic_version"}
    finally:
        store.close()


def test_the_migration_scripts_ship_inside_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    versions = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))
    # Numbered in order, one revision each, from 0001.
    assert [name[:4] for name in versions] == [f"{n:04}" for n in range(1, len(versions) + 1)]
    assert versions[0] == "0001_initial.py"


def test_default_database_url_names_the_file_in_the_data_dir(tmp_path: Path) -> None:
    assert default_database_url(tmp_path) == f"sqlite:///{tmp_path}/allot.db"


def test_sqlite_connections_use_wal_and_the_durability_settings(tmp_path: Path) -> None:
    store = SqlStore(default_database_url(tmp_path))
    try:
        store.migrate()
        with store.engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        store.close()
    # synchronous 1 is NORMAL.
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 5000,
    }


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_table_has_a_primary_key(name: str) -> None:
    assert Base.metadata.tables[name].primary_key.columns
