"""``keyless witness init|serve``: run a C2SP tlog-witness for other people's logs.

``init`` creates the witness key in the data directory and prints its vkey (give it to the log
operators); ``serve`` answers ``POST /add-checkpoint`` at the port root for the logs named with
``--log VKEY`` or ``[[logs]] vkey = "…"`` in ``--config FILE`` (docs/witnessing.md).
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
from pathlib import Path
from typing import Any

DEFAULT_PORT = 7380


def default_witness_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("keyless-witness", appauthor=False))


def _default_name() -> str:
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.getfqdn()) or "localhost"
    return f"{host}/keyless-witness"


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    actions = parser.add_subparsers(dest="witness_command", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init", help="create the witness key and print its vkey",
        description="Create the witness's cosigning key in the data directory (mode 0600) and "
        "print its vkey, which log operators put in their [[witnesses]] and verifiers in their "
        "witness policy.",
    )
    init.add_argument("--data-dir", type=Path, help="witness data directory "
                      "(default: the per-user keyless-witness directory)")
    init.add_argument("--name", help="the witness name in its cosignatures "
                      "(default: <host>/keyless-witness); no spaces or '+'")
    init.add_argument("--mldsa", action="store_true",
                      help="also create an ML-DSA-44 cosigning key (type 0x06)")
    init.set_defaults(run=run_init)
    serve = actions.add_parser(
        "serve", help="answer add-checkpoint requests of the configured logs",
        description="Serve the C2SP tlog-witness API (POST /add-checkpoint, "
        "GET /<sha256(origin)>/checkpoint, /healthz, /metrics) at the port root.",
    )
    serve.add_argument("--data-dir", type=Path, help="witness data directory")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"port to listen on (default {DEFAULT_PORT})")
    serve.add_argument("--log", action="append", default=[], metavar="VKEY",
                       help="a log to witness, by its checkpoint vkey (repeatable)")
    serve.add_argument("--config", type=Path, metavar="FILE",
                       help='TOML file with [[logs]] vkey = "…" entries')
    serve.add_argument("--rate", type=float, default=5.0, metavar="PER_SECOND",
                       help="add-checkpoint requests allowed per log and second, in bursts of "
                       "up to 10 times that (default 5)")
    serve.set_defaults(run=run_serve)


def run_init(args: argparse.Namespace) -> int:
    from keyless.errors import ConfigError, InvalidInput
    from keyless.witness.keys import create_keys

    data_dir = args.data_dir or default_witness_dir()
    try:
        cosigners = create_keys(data_dir, args.name or _default_name(), mldsa=args.mldsa)
    except (ConfigError, InvalidInput) as exc:
        print(f"keyless witness init: {exc}", file=sys.stderr)
        return 1
    for cosigner in cosigners:
        print(cosigner.vkey.encode())
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import asyncio

    import uvicorn

    from keyless.errors import ConfigError
    from keyless.http.protocol import json_error_http_protocol
    from keyless.server.serving import GracefulServer
    from keyless.witness.app import build_service, create_app, read_log_vkeys

    data_dir = args.data_dir or default_witness_dir()
    try:
        vkeys = read_log_vkeys(args.config, args.log)
        if not 0 < args.rate <= 10_000:
            raise ConfigError("--rate must be in (0, 10000]")
        service = build_service(data_dir, vkeys, rate=args.rate)
    except ConfigError as exc:
        print(f"keyless witness serve: {exc}", file=sys.stderr)
        return 2
    for vkey in service.vkeys:
        print(f"keyless witness: cosigning as {vkey.encode()}", file=sys.stderr)
    for origin in service.logs:
        print(f"keyless witness: witnessing {origin}", file=sys.stderr)
    config = uvicorn.Config(
        create_app(service), host=args.host, port=args.port, log_config=None,
        access_log=False, lifespan="off", server_header=False,
        http=json_error_http_protocol(), ws="none",
    )

    async def main() -> int:
        server = GracefulServer(config)
        await server.serve()
        return 0 if server.started else 1

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 130
    finally:
        service.store.close()
