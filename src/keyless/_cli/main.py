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
    "admin": ("admin", "operate a stack: rotate CA, TSA or log keys"),
    "log": ("log", "transparency log maintenance (fsck)"),
    "sign": ("sign", "sign files with a short-lived certificate (Sigstore bundle v0.3)"),
    "verify": ("verify", "verify a file against its Sigstore bundle and an identity"),
    "attest": ("attest", "sign an in-toto attestation about a file (DSSE bundle)"),
    "verify-attestation": ("verify", "verify an in-toto attestation bundle about a file"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; each command module adds its own arguments.

    With ``only``, just that command's module is imported (the others get a help-only stub), so
    ``keyless verify`` does not pay for importing the server (cold start ≤ 300 ms).
    """
    from keyless import __version__

    parser = argparse.ArgumentParser(
        prog="keyless",
        description="Self-hostable, Sigstore-compatible keyless code signing.",
    )
    parser.add_argument("--version", action="version", version=f"keyless {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(f"keyless._cli.{module_name}")
        module.add_parser(sub, name, help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``keyless`` with ``argv`` and return the process exit status."""
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    parser = build_parser(words[0] if words and words[0] in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
