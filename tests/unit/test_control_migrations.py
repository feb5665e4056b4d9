"""Migrations on SQLite: up and down again, and the schema they build is the models' schema."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from fjord.control import migrate
from fjord.control.models import Base


def tables(url: str) -> set[str]:
    engine = create_engine(migrate.sync_url(url))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def schema_drift(url: str) -> list[object]:
    engine = create_engine(migrate.sync_url(url))
    try:
        with engine.connect() as connection:
            return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))
    finally:
        engine.dispose()


def test_sqlite_migrates_up_and_down_and_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fjord.db'}"
    assert migrate.current(url) is None
    migrate.upgrade(url)
    assert migrate.current(url) == "0005"
    assert tables(url) == set(Base.metadata.tables)
    assert schema_drift(url) == []
    migrate.downgrade(url)
    assert migrate.current(url) is None
    assert tables(url) == set()
    migrate.upgrade(url)  # and up again on the emptied database
    assert migrate.current(url) == "0005"
