"""Secrets at rest and on screen for real ``keyless serve`` processes (issue 13, defects 1 and 9).

* the data directory is 0700 and the database files (also one outside it, with its -wal/-shm)
  0600 on every start, whatever an older version or the umask left;
* no private key is in clear in any database: SQLite's key-value table holds the OIDC keys
  wrapped under ``DIR/keys/kek``, PostgreSQL's holds every key wrapped under ``--kek-file``;
* a PostgreSQL start without a KEK is refused with a sentence saying how to give one, and clear
  rows an older version left are wrapped in place (and said so in the log);
* no password is printed, and ``--oidc-user EMAIL:PASSWORD`` warns that ``ps`` shows it.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from stackutil import KEYLESS, PASSWORD, USER, RunningStack, start_stack

from keyless.sealing import is_sealed
from keyless.server import kek
from keyless.services.oidc.keyring import public_jwk

pytestmark = pytest.mark.integration

DAY = 86400


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _sqlite_rows(db: Path) -> list[tuple[str, str, bytes]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT namespace, key, value FROM kv")
        return [(n, k, bytes(v)) for n, k, v in rows]


def _private_files(data_dir: Path) -> list[bytes]:
    """The private key files on disk, as they would appear in a database in clear."""
    found = [p.read_bytes() for p in (data_dir / "keys").rglob("*") if p.is_file()]
    return [data for data in found if b"PRIVATE KEY" in data]


def _assert_no_clear_key(rows: list[tuple[str, str, bytes]], keys: list[bytes]) -> None:
    assert rows
    for namespace, key, value in rows:
        assert b"PRIVATE KEY" not in value, (namespace, key)
        for pem in keys:
            assert pem not in value and base64.b64encode(pem) not in value, (namespace, key)
        if namespace.startswith(("keyless-secrets", "oidc-keys")):
            assert namespace.endswith(".sealed") and is_sealed(value), (namespace, key)


def test_files_are_owner_only_and_the_database_holds_no_clear_key(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a usual umask: what was created 0644 before
    try:
        data = tmp_path / "data"
        data.mkdir(mode=0o755)
        data.chmod(0o755)  # left wide by an older version or the operator
        db = tmp_path / "elsewhere" / "state.db"
        db.parent.mkdir()
        stack = start_stack(data, "--database", f"sqlite:///{db}")
    finally:
        os.umask(old)
    try:
        assert stack.token()
        assert _mode(data) == 0o700
        assert _mode(data / "keys") == 0o700
        assert _mode(data / "keys" / "kek") == 0o600
        for suffix in ("", "-wal", "-shm"):
            assert _mode(db.with_name(db.name + suffix)) == 0o600, suffix
        rows = _sqlite_rows(db)
        assert any(n == "oidc-keys.sealed" for n, _, _ in rows), rows
        _assert_no_clear_key(rows, _private_files(data))
        output = stack.output()
        assert PASSWORD not in output
        assert "--oidc-user EMAIL:PASSWORD puts the password on the command line" in output
        assert "--oidc-user-file" in output
    finally:
        assert stack.stop() == 0, stack.output()


def test_users_from_a_file_and_no_password_on_screen(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"{USER}:{PASSWORD}\n")
    users.chmod(0o600)
    stack = start_stack(tmp_path / "data", "--oidc-user-file", str(users), users=())
    try:
        assert stack.token()
        assert PASSWORD not in stack.output()
        assert "puts the password on the command line" not in stack.output()
    finally:
        assert stack.stop() == 0, stack.output()
    users.chmod(0o644)
    refused = subprocess.run(
        [str(KEYLESS), "serve", "--data-dir", str(tmp_path / "data"), "--oidc-user-file",
         str(users)], capture_output=True, text=True, timeout=60, check=False,
    )
    assert refused.returncode == 2 and "chmod 600" in refused.stderr, refused.stderr
    assert PASSWORD not in refused.stderr


def _clear_pem() -> tuple[bytes, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem, public_jwk(key.public_key())["kid"]


def test_clear_oidc_keys_of_an_older_version_are_wrapped_on_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert start_stack(data).stop() == 0
    epoch = int(time.time() // DAY)
    kids = {}
    with sqlite3.connect(data / "keyless.db") as conn:  # as an older version left them
        conn.execute("DELETE FROM kv WHERE namespace = 'oidc-keys.sealed'")
        for e in range(epoch - 1, epoch + 2):  # the keys an older version published
            pem, kids[e] = _clear_pem()
            conn.execute("INSERT INTO kv VALUES ('oidc-keys', ?, ?, ?)",
                         (f"epoch/{e}", pem, (e + 4) * DAY))
    stack = start_stack(data)
    try:
        jwks = httpx.get(f"{stack.url}/oidc/jwks", timeout=5).json()
        published = {k["kid"] for k in jwks["keys"]}
        assert kids[int(time.time() // DAY)] in published  # the same keys, now wrapped
        assert stack.token()
        assert "wrapped the clear value oidc-keys/epoch/" in stack.output()
        rows = _sqlite_rows(data / "keyless.db")
        _assert_no_clear_key(rows, [])
    finally:
        assert stack.stop() == 0, stack.output()


def test_postgres_without_a_kek_is_refused_with_how_to(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != kek.ENV}
    result = subprocess.run(
        [str(KEYLESS), "serve", "--data-dir", str(tmp_path / "d"),
         "--database", "postgresql://keyless@127.0.0.1:1/keyless"],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "--kek-file FILE" in result.stderr and "KEYLESS_KEK_FILE" in result.stderr


def _pg_rows(database: str) -> list[tuple[str, str, bytes]]:
    import psycopg

    with psycopg.connect(database) as conn:
        return [(n, k, bytes(v)) for n, k, v in
                conn.execute("SELECT namespace, key, value FROM kv").fetchall()]


def _unwrap_as_an_older_version(database: str, kek_file: Path) -> int:
    """Rewrite every wrapped row in clear under its plain namespace (what older versions
    stored); returns how many rows were rewritten."""
    import psycopg

    sealer = kek.load_or_create(kek_file)
    rows = [r for r in _pg_rows(database) if r[0].endswith(".sealed")]
    with psycopg.connect(database) as conn:
        for namespace, key, value in rows:
            plain = namespace.removesuffix(".sealed")
            clear = sealer.open(f"{plain}/{key}", value)
            conn.execute("DELETE FROM kv WHERE namespace = %s AND key = %s", (namespace, key))
            conn.execute(
                "INSERT INTO kv (namespace, key, value, expires_at) VALUES (%s, %s, %s, %s)",
                (plain, key, clear, 2.0**62),
            )
    return len(rows)


def test_postgres_keys_are_wrapped_and_old_clear_rows_are_wrapped_in_place(
    postgres_cluster: Any, tmp_path: Path
) -> None:
    database = postgres_cluster.create_database()
    kek_file = tmp_path / "secret" / "kek"
    args = ("--database", database, "--kek-file", str(kek_file))
    stack: RunningStack = start_stack(tmp_path / "data", *args, timeout=60)
    try:
        assert stack.token()
        trust = stack.client_trust_config()
    finally:
        assert stack.stop() == 0, stack.output()
    assert _mode(kek_file) == 0o600
    keys = _private_files(tmp_path / "data")
    assert keys  # the CA and TSA files unpacked from the database
    _assert_no_clear_key(_pg_rows(database), keys)

    assert _unwrap_as_an_older_version(database, kek_file) > 10
    assert any(b"PRIVATE KEY" in r[2] for r in _pg_rows(database))
    stack = start_stack(tmp_path / "data", *args, port=stack.port, timeout=60)
    try:
        assert stack.client_trust_config() == trust  # the very same keys
        assert stack.token()
        assert "wrapped the clear value keyless-secrets/" in stack.output()
    finally:
        assert stack.stop() == 0, stack.output()
    _assert_no_clear_key(_pg_rows(database), keys)


def test_a_kek_that_does_not_unwrap_the_keys_stops_the_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert start_stack(data).stop() == 0
    other = tmp_path / "other-kek"
    kek.load_or_create(other)
    result = subprocess.run(
        [str(KEYLESS), "serve", "--data-dir", str(data), "--kek-file", str(other)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "does not unwrap with this key-encryption key" in result.stderr
    assert "Traceback" not in result.stderr
