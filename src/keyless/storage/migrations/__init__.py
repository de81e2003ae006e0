"""Schema migrations of the SQL backends, as ordered lists of SQL scripts.

Each backend records how many scripts it has applied (SQLite: ``PRAGMA user_version``; PostgreSQL:
table ``keyless_schema``) and runs the rest in order at open, in one transaction each. Scripts are
append-only: never edit one that has shipped, add a new one. A database that has applied more
scripts than this keyless knows was written by a newer keyless: it is refused
(:func:`check_not_newer`), never used with a schema this code does not understand.

Entries live in one table for all logs. In SQLite the rowid is ``log_id · 2^40 + index`` so that
appends go to the end of the b-tree and a log's entries are one contiguous range (2^40 ≈ 10^12
entries per log); ``leaf_hash`` is stored only when it differs from the dedup key, so the common
case (dedup by leaf hash) costs a single secondary index.
"""

from __future__ import annotations

from keyless.errors import ConfigError


def check_not_newer(version: int, known: int, where: str) -> None:
    """Refuse a database at schema ``version`` when this keyless only knows ``known`` scripts."""
    if version > known:
        raise ConfigError(
            f"{where} has schema version {version}, newer than this keyless knows ({known}): "
            "it was written by a newer keyless; run that version or upgrade keyless "
            "(a database cannot be downgraded)"
        )

SQLITE: list[str] = [
    """
    CREATE TABLE logs (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        root_hash BLOB NOT NULL,
        checkpoint BLOB NOT NULL
    );
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY,          -- log_id * 2^40 + index
        log_id INTEGER NOT NULL,
        dedup_key BLOB NOT NULL,
        leaf_hash BLOB,                  -- NULL when equal to dedup_key
        integrated_time INTEGER NOT NULL,
        leaf BLOB NOT NULL,
        bundle_entry BLOB                -- NULL when equal to leaf
    );
    CREATE UNIQUE INDEX entries_dedup ON entries (log_id, dedup_key);
    CREATE INDEX entries_leaf_hash ON entries (log_id, leaf_hash) WHERE leaf_hash IS NOT NULL;
    CREATE TABLE search_index (
        log TEXT NOT NULL,
        key TEXT NOT NULL,
        idx INTEGER NOT NULL,
        PRIMARY KEY (log, key, idx)
    ) WITHOUT ROWID;
    CREATE TABLE kv (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    """,    # 2: event windows of storage.kv (the OIDC sign-in throttle, shared by every process)
    """
    CREATE TABLE kv_events (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        event TEXT NOT NULL,
        at REAL NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (namespace, key, event)
    ) WITHOUT ROWID;
    CREATE INDEX kv_events_expiry ON kv_events (expires_at);
    """,
]

POSTGRES: list[str] = [
    """
    CREATE TABLE logs (
        id SERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        size BIGINT NOT NULL,
        root_hash BYTEA NOT NULL,
        checkpoint BYTEA NOT NULL
    );
    CREATE TABLE entries (
        log_id INTEGER NOT NULL,
        idx BIGINT NOT NULL,
        dedup_key BYTEA NOT NULL,
        leaf_hash BYTEA,
        integrated_time BIGINT NOT NULL,
        leaf BYTEA NOT NULL,
        bundle_entry BYTEA,
        PRIMARY KEY (log_id, idx)
    );
    CREATE UNIQUE INDEX entries_dedup ON entries (log_id, dedup_key);
    CREATE INDEX entries_leaf_hash ON entries (log_id, leaf_hash) WHERE leaf_hash IS NOT NULL;
    CREATE TABLE tiles (
        log_id INTEGER NOT NULL,
        path TEXT COLLATE "C" NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (log_id, path)
    );
    CREATE TABLE search_index (
        log TEXT NOT NULL,
        key TEXT NOT NULL,
        idx BIGINT NOT NULL,
        PRIMARY KEY (log, key, idx)
    );
    CREATE TABLE kv (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value BYTEA NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (namespace, key)
    );
    """,    # 2: event windows of storage.kv (the OIDC sign-in throttle, shared by every process)
    """
    CREATE TABLE kv_events (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        event TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (namespace, key, event)
    );
    CREATE INDEX kv_events_expiry ON kv_events (expires_at);
    """,
]
