"""A throwaway PostgreSQL cluster for the tests (initdb/pg_ctl into a temporary directory).

PostgreSQL refuses to run as root, so when the tests run as root the cluster is created and run as
the ``postgres`` system user (``runuser``), in a directory it owns. The server listens only on a
unix socket inside that directory (``listen_addresses=''``), so parallel test workers never fight
over a TCP port. Each test gets its own database through :meth:`PgCluster.create_database`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

PG_BIN = Path(os.environ.get("KEYLESS_PG_BIN", "/usr/lib/postgresql/15/bin"))


def pg_program(name: str) -> str | None:
    """The path of a PostgreSQL server program, or None if it is not installed."""
    candidate = PG_BIN / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


class PgCluster:
    """initdb + pg_ctl start in a fresh temporary directory; :meth:`stop` removes everything."""

    def __init__(self) -> None:
        initdb = pg_program("initdb")
        pg_ctl = pg_program("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("PostgreSQL server programs (initdb, pg_ctl) not found")
        self._pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="keyless-pg-"))
        self.datadir = self.root / "data"
        self.socket_dir = self.root
        self.port = 5432
        self._user = None
        if os.geteuid() == 0:
            self._user = "postgres"
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o755)
        self._run(
            [
                initdb,
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ]
        )
        options = (
            f"-c listen_addresses='' -c unix_socket_directories={self.socket_dir} "
            f"-c port={self.port} -c max_connections=200 -c shared_buffers=64MB "
            "-c synchronous_commit=on -c fsync=on"
        )
        self._run(
            [
                pg_ctl,
                "-D",
                str(self.datadir),
                "-l",
                str(self.root / "log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def _run(self, argv: list[str]) -> None:
        if self._user is not None:
            argv = ["runuser", "-u", self._user, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {result.stdout}{result.stderr}")

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for ``database`` over the unix socket."""
        return (
            f"postgresql://postgres@/{database}?host={quote(str(self.socket_dir), safe='')}"
            f"&port={self.port}"
        )

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server immediately and delete its directory."""
        try:
            self._run([self._pg_ctl, "-D", str(self.datadir), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
