"""``keyless log fsck DIR|URL``: check transparency logs offline (targets.md G9).

``DIR`` is a keyless data directory (its ``keyless.db`` and tile folder), a path to a ``.db`` file,
or a storage URL (``sqlite:///…``, ``postgresql://…``). Every log in the database is checked unless
``--log`` names some. Exit status 0 when everything is consistent, 1 otherwise.
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
        for name in names:
            try:
                report = fsck_log(backend.log_store, name)
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
