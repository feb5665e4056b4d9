"""Run the packaged Alembic migrations against a database URL, up or down.

Migrations run on a synchronous engine (stdlib ``sqlite3`` or psycopg in sync mode) because
Alembic's operations are synchronous; the service layer uses the async drivers of the same URL.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).parent / "migrations"


def sync_url(url: str) -> str:
    """The synchronous driver for an async URL: aiosqlite → sqlite3; psycopg serves both."""
    return url.replace("sqlite+aiosqlite://", "sqlite://", 1)


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


# Replicas starting together on one PostgreSQL migrate one after the other (the others then
# find the schema at head); the key is an arbitrary constant of fjord's.
_MIGRATION_LOCK = 0x666A6F7264


def _run(url: str, action: str, revision: str) -> None:
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            getattr(command, action)(_config(connection), revision)
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    _run(url, "upgrade", revision)


def downgrade(url: str, revision: str = "base") -> None:
    _run(url, "downgrade", revision)


def head() -> str:
    """The packaged migrations' one head (two heads would mean two branches of the schema)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    heads = ScriptDirectory.from_config(config).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads ({heads}); chain them")
    return str(heads[0])


def current(url: str) -> str | None:
    """The revision the database is at; None for an empty database."""
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def autogenerate(url: str, message: str) -> None:
    """Developer helper: write a new revision from the models' difference to ``url``."""
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            command.revision(_config(connection), message=message, autogenerate=True)
    finally:
        engine.dispose()
