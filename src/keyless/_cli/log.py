"""``keyless log fsck DIR|URL``: check transparency logs (targets.md G9).

``DIR`` is a keyless data directory (its ``keyless.db`` and tile folder), a path to a ``.db`` file,
or a storage URL (``sqlite:///…``, ``postgresql://…``). Every log in the database is checked unless
``--log`` names some. Exit status 0 when everything is consistent, 1 otherwise. The check may run
while ``keyless serve`` writes: each log is read from one database snapshot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any, name: str, help_text: str) -> None:
    """Register ``keyless log`` and its ``fsck`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    commands = parser.add_subparsers(dest="log_command", metavar="SUBCOMMAND", required=True)
    fsck = commands.add_parser(
        "fsck",
        help="re-derive every log's tree from its entries; check tiles, bundles and checkpoint",
    )
    fsck.add_argument("target", metavar="DIR|URL", help="data directory, .db file or storage URL")
    fsck.add_argument("--log", action="append", help="only this log (repeatable)")
    fsck.set_defaults(run=run_fsck)


def _open(target: str) -> Any:
    from keyless.storage import open_backend

    if "://" in target:
        return open_backend(target)
    path = Path(target)
    if path.is_dir():
        database = path / "keyless.db"
        if not database.exists():
            from keyless.errors import ConfigError

            raise ConfigError(f"{path} holds no keyless.db")
        return open_backend(f"sqlite:///{database.resolve()}", data_dir=path)
    if path.is_file():
        return open_backend(f"sqlite:///{path.resolve()}", data_dir=path.parent)
    from keyless.errors import ConfigError

    raise ConfigError(f"{target}: no such directory, file or URL")


class _LiveReads:
    """A log store's reads as :func:`keyless.log.fsck.fsck_log` needs them beside a live server.

    Each log is checked inside one read snapshot of the database (``Snapshots``), so a batch
    committed meanwhile is neither half seen nor reported as "entries beyond the checkpoint".
    Tile files are not versioned: when a later batch completed a partial tile, its ``.p/W``
    file may be gone, and its bytes are then the prefix of the full tile (C2SP tlog-tiles:
    a partial tile is a prefix of the full one; an entry bundle, of its entries).
    """

    def __init__(self, store: Any) -> None:
        self._store = store

    def snapshot(self, log: str) -> Any:
        """One consistent read view for checking ``log`` (a no-op if the store has none)."""
        import contextlib

        from keyless.storage import Snapshots

        if isinstance(self._store, Snapshots):
            return self._store.snapshot()
        return contextlib.nullcontext()

    def read_tile(self, log: str, path: str) -> bytes | None:
        found: bytes | None = self._store.read_tile(log, path)
        full, sep, width = path.partition(".p/")
        if found is not None or not sep or not width.isdigit():
            return found
        wider: bytes | None = self._store.read_tile(log, full)
        if wider is None:
            return None
        if full.startswith("tile/entries/"):
            from keyless.formats.tiles import decode_entry_bundle, encode_entry_bundle

            return encode_entry_bundle(decode_entry_bundle(wider)[: int(width)])
        return wider[: 32 * int(width)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def run_fsck(args: argparse.Namespace) -> int:
    """Check the logs; print one line per log and one per problem."""
    from keyless.errors import Error
    from keyless.log.fsck import fsck_log

    try:
        backend = _open(args.target)
    except Error as exc:
        print(f"keyless log fsck: {exc}", file=sys.stderr)
        return 1
    try:
        names = args.log or backend.log_store.logs()
        if not names:
            print("keyless log fsck: no logs found", file=sys.stderr)
            return 1
        failed = False
        store = _LiveReads(backend.log_store)
        for name in names:
            try:
                with store.snapshot(name):
                    report = fsck_log(store, name)
            except Error as exc:
                print(f"{name}: cannot be checked: {exc}")
                failed = True
                continue
            status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
            print(f"{name}: size {report.size}, {report.tiles_checked} tiles checked, {status}")
            for problem in report.problems:
                print(f"  {name}: {problem}")
            failed |= not report.ok
        return 1 if failed else 0
    finally:
        backend.close()
