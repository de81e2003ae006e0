"""``keyless serve``: the whole stack in one process on one port (contracts.md §2).

Prints a banner with every URL and a copy-paste sign/verify example that obtains a token with the
embedded provider's password grant (contracts.md §3), then serves until SIGINT/SIGTERM, on which
uvicorn stops accepting connections and the app drains in-flight writes before closing services.

No password is ever printed: the example asks for it (or takes it from ``$KEYLESS_PASSWORD``).
Passwords given with ``--oidc-user EMAIL:PASSWORD`` are visible to every local user in ``ps``,
so that form warns and names the alternatives (``--oidc-user-file``, ``KEYLESS_OIDC_USERS``,
hashed ``[[oidc_users]]`` entries in the config file).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from keyless.server.config import OIDC_USERS_ENV, Settings
from keyless.server.kek import ENV as KEK_ENV
from keyless.server.stack import Stack

#: the shell variable the banner's example reads the password from (else it prompts)
PASSWORD_VARIABLE = "KEYLESS_PASSWORD"  # noqa: S105 (a variable name, not a password)

PASSWORD_ON_COMMAND_LINE = (
    "--oidc-user EMAIL:PASSWORD puts the password on the command line, where other local users "
    "can read it (ps, /proc); use --oidc-user-file FILE (mode 0600, lines EMAIL:PASSWORD or "
    f"EMAIL:<hash from keyless admin hash-password>), the {OIDC_USERS_ENV} environment "
    "variable, or [[oidc_users]] password_hash in the config file instead"
)


#: the values of --log-level and of [server] log_level
LOG_LEVELS = ("debug", "info", "warning", "error")


def add_parser(sub: Any, name: str, help_text: str) -> None:
    """Register ``keyless serve`` on the top-level subparsers."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument(
        "--data-dir", type=Path, help="state directory (default: the user data dir)"
    )
    parser.add_argument("--host", help="listen address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default: 3000)")
    parser.add_argument(
        "--public-url",
        help="URL clients use to reach this stack (default: http://localhost:PORT)",
    )
    parser.add_argument(
        "--database",
        help="sqlite:///PATH (default: DIR/keyless.db) or postgresql://… (shared by processes)",
    )
    parser.add_argument("--config", type=Path, help="TOML config file (default: DIR/keyless.toml)")
    parser.add_argument(
        "--oidc-user",
        action="append",
        default=[],
        metavar="EMAIL:PASSWORD",
        help="a user of the embedded OIDC provider (repeatable); the password is visible to "
        "other local users in ps: prefer --oidc-user-file or KEYLESS_OIDC_USERS",
    )
    parser.add_argument(
        "--oidc-user-file",
        type=Path,
        metavar="FILE",
        help="users of the embedded OIDC provider, one EMAIL:PASSWORD or EMAIL:<scrypt hash> "
        "(keyless admin hash-password) per line; the file must be mode 0600. The environment "
        f"variable {OIDC_USERS_ENV} may hold the same lines",
    )
    parser.add_argument(
        "--kek-file",
        type=Path,
        metavar="FILE",
        help="key-encryption key wrapping the private keys kept in the database (required "
        f"with PostgreSQL, the same file for every process; also {KEK_ENV}); created "
        "mode 0600 if absent. Default on SQLite: DIR/keys/kek",
    )
    parser.add_argument(
        "--workers",
        type=_worker_count,
        metavar="N",
        help="processes serving the port, each running every service; sequencing stays once "
        "per log (default: [server] workers, else one per usable core; 1 serves in this process)",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help="least severe log records written to stderr (default: [server] log_level, info)",
    )
    parser.set_defaults(run=run)


def _worker_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (1 or more)")
    return int(text)


def banner(stack: Stack, workers: int = 1) -> str:
    """The startup text: every URL and a copy-paste sign/verify example."""
    settings = stack.settings
    p = settings.public_url
    lines = [
        "",
        f"keyless is serving on {p}  (listening on {settings.host}:{settings.port})",
        f"  data dir        {settings.data_dir}",
        f"  database        {_redact(settings.database_url)}",
        f"  workers         {workers} process{'es' if workers > 1 else ''}",
    ]
    for component in stack.components:
        lines.append(f"  {component.name:<15} {component.url}")
    lines += [
        f"  {'health':<15} {p}/healthz",
        f"  {'metrics':<15} {p}/metrics",
        f"  {'trust config':<15} {p}/client-trust-config.json",
        f"  {'':<15} (also {settings.data_dir / 'client-trust-config.json'})",
        f"  {'TUF root':<15} {settings.data_dir / 'tuf-root.json'}"
        f"  (clients pin it once: keyless trust-instance {p} tuf-root.json)",
    ]
    names = {c.name for c in stack.components}
    users = sorted(settings.oidc_users) or sorted(settings.oidc_user_hashes)
    if "oidc" in names and users and {"ca", "rekor-v2", "tsa"} <= names:
        user = users[0]
        extract = (
            "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"id_token\"])'"
        )
        keyless = _keyless_command()
        var = PASSWORD_VARIABLE
        # The password is never printed: the first line asks for it without echo unless
        # $KEYLESS_PASSWORD is set, and curl reads it from stdin, not from its command line.
        # A token certifies one key only (the CA's replay guard): one fresh token per signing.
        lines += [
            "",
            "Sign and verify (copy-paste, in another terminal):",
            f"  curl -s -o tc.json {p}/client-trust-config.json",
            f"  [ -n \"${{{var}-}}\" ] || {{ printf 'password of {user}: '; "
            f"read -rs {var}; echo; }}",
            "  token() { printf %s \"$" + var + "\" | curl -s -d grant_type=password "
            f"-d client_id=sigstore -d scope='openid email' -d username={user} "
            f"--data-urlencode password@- {p}/oidc/token | {extract}; }}",
            "  echo hello > artifact.txt",
            f"  {keyless} sign artifact.txt --overwrite --identity-token \"$(token)\" "
            "--trust-config tc.json",
            f"  {keyless} verify artifact.txt --bundle artifact.txt.sigstore.json "
            f"--cert-identity {user} --cert-oidc-issuer {settings.oidc_issuer} "
            "--trust-config tc.json",
            "  # sigstore-python works the same way:",
            "  #   sigstore --trust-config tc.json sign --overwrite "
            "--identity-token \"$(token)\" artifact.txt",
        ]
    elif not users:
        lines += [
            "",
            "No OIDC users configured: add --oidc-user-file FILE (lines EMAIL:PASSWORD, mode "
            "0600) to sign.",
        ]
    missing = sorted({"ca", "ctlog", "rekor-v1", "rekor-v2", "tsa", "oidc", "tuf"} - names)
    if missing:
        lines += ["", f"Not available in this build: {', '.join(missing)}"]
    return "\n".join(lines) + "\n"


def _keyless_command() -> str:
    """How to run this very ``keyless`` from another terminal (its venv need not be on PATH)."""
    import shutil

    exe = Path(sys.argv[0])
    if exe.name == "keyless" and exe.is_file():
        return shlex.quote(str(exe.resolve()))
    found = shutil.which("keyless")
    return shlex.quote(found) if found else "keyless"


def _port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, checked before the data directory is touched."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use; choose another with --port"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def _redact(url: str) -> str:
    """A database URL without its password, for printing."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def run(args: argparse.Namespace) -> int:
    """Start the stack and serve until interrupted."""
    import dataclasses
    import os

    from keyless.errors import ConfigError
    from keyless.http.logs import configure_logging
    from keyless.server.config import load_settings
    from keyless.server.workers import usable_cores

    if args.oidc_user:
        print(f"keyless serve: warning: {PASSWORD_ON_COMMAND_LINE}", file=sys.stderr)
    kek_file = args.kek_file or (Path(os.environ[KEK_ENV]) if os.environ.get(KEK_ENV) else None)
    explicit = frozenset(
        name
        for name, value in (
            ("host", args.host),
            ("port", args.port),
            ("public_url", args.public_url),
            ("database", args.database),
        )
        if value is not None
    )
    try:
        settings = load_settings(
            data_dir=args.data_dir,
            config_file=args.config,
            host=args.host,
            port=args.port,
            public_url=args.public_url,
            database_url=args.database,
            oidc_users=args.oidc_user,
            oidc_user_file=args.oidc_user_file,
            oidc_users_env=os.environ.get(OIDC_USERS_ENV),
            kek_file=kek_file,
        )
    except ConfigError as exc:
        print(f"keyless serve: {exc}", file=sys.stderr)
        return 2
    if args.log_level is not None:  # the command line wins over the config file
        settings = dataclasses.replace(settings, log_level=args.log_level)
    configure_logging(settings.log_level, settings.log_format)
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        print(f"keyless serve: --data-dir {settings.data_dir} is not a directory", file=sys.stderr)
        return 2
    workers = args.workers or settings.workers or usable_cores()
    if workers > 1:
        return _supervise(settings, explicit, workers)
    problem = _port_problem(settings.host, settings.port)
    if problem is not None:
        print(f"keyless serve: {problem}", file=sys.stderr)
        return 2

    from keyless.server.app import create_app
    from keyless.server.init import build_stack
    from keyless.server.serving import GracefulServer, uvicorn_config
    from keyless.server.serving import run as run_loop

    async def main() -> int:
        # Build (first start) or reopen the stack before listening, so that a refusal such as
        # "data directory in use" is one sentence and not a lifespan traceback.
        try:
            stack = await build_stack(settings, explicit)
        except ConfigError as exc:
            print(f"keyless serve: {exc}", file=sys.stderr)
            return 2
        print(banner(stack), file=sys.stderr, flush=True)
        for warning in stack.warnings:
            print(f"keyless serve: warning: {warning}", file=sys.stderr, flush=True)

        async def prebuilt(_settings: Any) -> Stack:
            return stack

        server = GracefulServer(uvicorn_config(create_app(settings, builder=prebuilt), settings))
        await server.serve()
        return 0 if server.started else 1

    try:
        return run_loop(main())
    except KeyboardInterrupt:
        return 130


def _supervise(settings: Settings, explicit: frozenset[str], workers: int) -> int:
    """``--workers N`` (N > 1): initialise once, then serve from N worker processes."""
    import asyncio

    from keyless.errors import ConfigError
    from keyless.server.workers import Supervisor, reserve_port, shared_metrics

    with shared_metrics():  # before anything imports prometheus_client
        from keyless.server.init import build_stack, claim_data_dir, release
        from keyless.server.stack import close_stack

        async def initialise() -> Stack:
            stack = await build_stack(settings, explicit, claimed=True)
            await close_stack(stack, stack.components)
            return stack

        try:
            locks = claim_data_dir(settings)
        except ConfigError as exc:
            print(f"keyless serve: {exc}", file=sys.stderr)
            return 2
        try:
            # after the lock: the workers of a supervisor killed a moment ago, which the lock
            # waited for, still listened on the port until they stopped
            problem = _port_problem(settings.host, settings.port)
            if problem is not None:
                print(f"keyless serve: {problem}", file=sys.stderr)
                return 2
            try:
                stack = asyncio.run(initialise())
            except ConfigError as exc:
                print(f"keyless serve: {exc}", file=sys.stderr)
                return 2
            print(banner(stack, workers), file=sys.stderr, flush=True)
            for warning in stack.warnings:
                print(f"keyless serve: warning: {warning}", file=sys.stderr, flush=True)
            with reserve_port(settings) as sock:
                return Supervisor(settings, explicit, workers, sock).run()
        except KeyboardInterrupt:
            return 130
        finally:
            release(locks)
