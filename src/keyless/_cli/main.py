"""``keyless``: the command-line entry point.

Subcommands are dispatched to modules imported lazily so that ``keyless verify`` starts fast
(issue: cold start ≤ 300 ms).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: subcommand → (module under keyless._cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "run the whole keyless stack (CA, logs, TSA, OIDC, TUF) on one port"),
    "log": ("log", "transparency log maintenance (fsck)"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each command module adds its own arguments."""
    from keyless import __version__

    parser = argparse.ArgumentParser(
        prog="keyless",
        description="Self-hostable, Sigstore-compatible keyless code signing.",
    )
    parser.add_argument("--version", action="version", version=f"keyless {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"keyless._cli.{module_name}")
        module.add_parser(sub, name, help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``keyless`` with ``argv`` and return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
