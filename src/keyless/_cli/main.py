"""``keyless``: the command-line entry point.

Subcommands are dispatched to modules imported lazily so that ``keyless verify`` starts fast
(issue #8: cold start ≤ 300 ms).

Exit codes (as sigstore-python and argparse): 0 success, 1 the operation failed (one sentence
on stderr), 2 the command line is wrong (one sentence naming the problem and ``--help``),
130 interrupted with Ctrl-C. No path prints a traceback unless ``KEYLESS_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

#: subcommand → (module under keyless._cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "run the whole keyless stack (CA, logs, TSA, OIDC, TUF) on one port"),
    "admin": ("admin", "operate a stack: rotate CA, TSA or log keys"),
    "log": ("log", "transparency log maintenance (fsck)"),
    "sign": ("sign", "sign files with a short-lived certificate (Sigstore bundle v0.3)"),
    "verify": ("verify", "verify a file against its Sigstore bundle and an identity"),
    "attest": ("attest", "sign an in-toto attestation about a file (DSSE bundle)"),
    "verify-attestation": ("verify", "verify an in-toto attestation bundle about a file"),
    "trust-instance": ("trust_instance", "pin a keyless instance's TUF root once (for --server)"),
    "image": ("image", "sign, attest and verify container images in their OCI registry"),
    "witness": ("witness", "run a C2SP tlog-witness that cosigns other logs' checkpoints"),
    "get-identity-token": ("identity_token", "print an OIDC identity token (CI, browser, device)"),
    "completion": ("completion", "print a shell completion script (bash, zsh or fish)"),
    "git": ("git", "sign git commits and tags keylessly (git setup)"),
    "verify-commit": ("git", "verify a git commit's keyless signature (offline)"),
    "verify-tag": ("git", "verify a git tag's keyless signature (offline)"),
    "monitor": ("monitor", "follow transparency logs: prove them append-only, report watched "
                "signers"),
}

#: commands of the ``keyless[server]`` extra, and the packages only that extra installs
SERVER_COMMANDS = frozenset({"serve", "admin", "log", "witness"})
SERVER_PACKAGES = ("starlette", "uvicorn", "psycopg", "prometheus_client")


def server_extra_missing() -> bool:
    """Whether the packages of ``pip install 'keyless[server]'`` are absent (client-only)."""
    return any(importlib.util.find_spec(name) is None for name in SERVER_PACKAGES)


EPILOG = """\
trust: without --trust-config or --server, sign and verify use the public-good Sigstore
instance: its trusted root ships with keyless and is refreshed through TUF at most once a day
(never with --offline). --server URL trusts the instance's TUF repository from the root pinned
with `keyless trust-instance URL ROOT.json`; an instance not pinned is trusted on first use,
with a warning that shows the root's fingerprint.

examples (a local stack; `keyless serve` prints a token command for its users):
  keyless serve --oidc-user alice@example.com:s3cret
  keyless trust-instance http://localhost:3000 ~/.local/share/keyless/tuf-root.json
  keyless sign --server http://localhost:3000 --identity-token "$TOKEN" app.tar.gz
  keyless verify app.tar.gz --cert-identity alice@example.com \\
      --cert-oidc-issuer http://localhost:3000/oidc --server http://localhost:3000

run `keyless COMMAND --help` for a command's options. Trust options can be set once in the
environment (KEYLESS_SERVER, KEYLESS_TRUST_CONFIG, …; a flag wins): see `keyless verify --help`.

exit status: 0 success, 1 failure (one sentence on stderr), 2 usage error, 130 interrupted.
"""


class UsageError(Exception):
    """A wrong command line: reported in one line with exit status 2."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(f"{prog}: error: {message} (see '{prog} --help')")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the full usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, message)


def build_parser(only: str | None = None) -> Parser:
    """The top-level parser; each command module adds its own arguments.

    With ``only``, just that command's module is imported (the others get a help-only stub), so
    ``keyless verify`` does not pay for importing the server (cold start ≤ 300 ms).
    """
    from keyless import __version__

    parser = Parser(
        prog="keyless",
        description="Self-hostable, Sigstore-compatible keyless code signing.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"keyless {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        if name in SERVER_COMMANDS and server_extra_missing():
            sub.add_parser(name, help=f"{help_text} (needs keyless[server])")
            continue
        module = importlib.import_module(f"keyless._cli.{module_name}")
        module.add_parser(sub, name, help_text)
    return parser


def _command_word(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line, if any (before parsing, to import lazily)."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def _run(argv: Sequence[str]) -> int:
    command = _command_word(argv)
    if command in SERVER_COMMANDS and server_extra_missing():
        print(f"keyless {command}: needs the server extra: pip install 'keyless[server]'",
              file=sys.stderr)
        return 2
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    result: int = args.run(args)
    return result


def _caused_by_ctrl_c(exc: BaseException) -> bool:
    """Whether ``exc`` was raised because of a ``KeyboardInterrupt`` (in its cause or context)."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``keyless`` with ``argv`` and return the process exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("KEYLESS_DEBUG", "") not in ("", "0")
    try:
        return _run(words)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except KeyboardInterrupt:
        print("keyless: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (``keyless … | head``): not an error worth a message
        with contextlib.suppress(Exception):
            sys.stderr.close()
        return 1
    except Exception as exc:
        if _caused_by_ctrl_c(exc):  # Python 3.11 wraps one raised during __set_name__
            print("keyless: interrupted", file=sys.stderr)
            return 130
        if debug:
            raise
        reason = " ".join(str(exc).split()) or "no details"
        print(
            f"keyless: unexpected error ({type(exc).__name__}: {reason}); "
            "rerun with KEYLESS_DEBUG=1 for details",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
