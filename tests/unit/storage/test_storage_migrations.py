"""Schema migrations (keyless.storage.migrations) on both SQL backends: a database at an older
schema version is upgraded in place at open, keeping its data and applying each script once; a
database written by a newer keyless (a higher version than the scripts known here) is refused with
a message that says so, never used (issue #17: it was silently accepted).

Only one script has shipped so far, so "older" is the shipped schema and the upgrade is a next
script added for the test, exactly as a later release would add one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import keyless.storage.postgres as postgres_backend
import keyless.storage.sqlite as sqlite_backend
from keyless.errors import ConfigError
from keyless.storage.migrations import POSTGRES, SQLITE

NEXT_SQLITE = "CREATE TABLE upgrade_probe (x INTEGER); INSERT INTO upgrade_probe VALUES (7)"
NEXT_POSTGRES = "CREATE TABLE upgrade_probe (x INTEGER); INSERT INTO upgrade_probe VALUES (7);"


class Database:
    """One database of either backend, opened as keyless opens it, and read or written raw."""

    def __init__(self, kind: str, target: str) -> None:
        self.kind = kind
        self.target = target

    def open(self) -> None:
        if self.kind == "sqlite":
            sqlite_backend.SQLiteBackend(Path(self.target)).close()
        else:
            postgres_backend.PostgresBackend(self.target).close()

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.target, isolation_level=None) as conn:
                return conn.execute(statement).fetchall()
        with psycopg.connect(self.target, autocommit=True) as pg:
            cursor = pg.execute(statement.encode())
            return cursor.fetchall() if cursor.description else []

    def version(self) -> int:
        query = ("PRAGMA user_version" if self.kind == "sqlite"
                 else "SELECT version FROM keyless_schema")
        value: int = self.sql(query)[0][0]
        return value

    def set_version(self, version: int) -> None:
        self.sql(f"PRAGMA user_version = {version}" if self.kind == "sqlite"
                 else f"UPDATE keyless_schema SET version = {version}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        yield Database("sqlite", str(tmp_path / "keyless.db"))
    else:
        cluster: Any = request.getfixturevalue("postgres_cluster")
        yield Database("postgres", cluster.create_database())


def _with_next_script(monkeypatch: pytest.MonkeyPatch) -> Callable[[Database], int]:
    monkeypatch.setattr(sqlite_backend, "SQLITE", [*SQLITE, NEXT_SQLITE])
    monkeypatch.setattr(postgres_backend, "POSTGRES", [*POSTGRES, NEXT_POSTGRES])
    return lambda db: len(SQLITE if db.kind == "sqlite" else POSTGRES) + 1


def test_an_older_database_is_upgraded_once_and_keeps_its_data(
    database: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    database.open()  # the schema keyless ships today
    shipped = database.version()
    assert shipped == len(SQLITE if database.kind == "sqlite" else POSTGRES)
    kept = "X'6b657074'" if database.kind == "sqlite" else "decode('6b657074', 'hex')"
    database.sql(f"INSERT INTO kv (namespace, key, value, expires_at) "
                 f"VALUES ('ns', 'k', {kept}, 1e12)")
    latest = _with_next_script(monkeypatch)(database)  # a later keyless, one script more
    database.open()
    assert database.version() == latest
    assert database.sql("SELECT x FROM upgrade_probe") == [(7,)]
    assert [bytes(v[0]) for v in database.sql("SELECT value FROM kv")] == [b"kept"]
    database.open()  # nothing left to apply: the script does not run twice
    assert database.version() == latest
    assert database.sql("SELECT x FROM upgrade_probe") == [(7,)]


def test_a_database_from_a_newer_keyless_is_refused_with_a_message(database: Database) -> None:
    database.open()
    known = database.version()
    database.set_version(known + 1)
    backend = "SQLite" if database.kind == "sqlite" else "PostgreSQL"
    with pytest.raises(ConfigError, match=(
        f"the {backend} database has schema version {known + 1}, newer than this keyless "
        rf"knows \({known}\): it was written by a newer keyless")):
        database.open()
    assert database.version() == known + 1, "the refused database was changed"
