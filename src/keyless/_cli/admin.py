"""``keyless admin rotate {ca,tsa,log}``: start a new key generation (docs/operator-guide.md §6),
and ``keyless admin hash-password``: an scrypt hash for ``[[oidc_users]] password_hash``.

The new generation is recorded at once and takes effect at the next start of ``keyless serve``:
on PostgreSQL rotate while the processes run and restart them one by one (no downtime: the old
generation stays valid for ``--overlap-hours``); on the embedded SQLite default the data
directory belongs to the running server, so stop it, rotate, start it (a few seconds).
``rotate log`` starts new shards of both Rekor logs (new keys, new tree, Rekor v2 at
``P/rekor-N``); retired shards stay in the trusted root with a closed validity window.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any, name: str, help_text: str) -> None:
    """Register ``keyless admin`` and its ``rotate`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    actions = parser.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    rotate = actions.add_parser(
        "rotate", help="start a new key generation of the CA, the TSA or the Rekor logs",
        description="Start a new key generation; it is published with a validity window in "
        "the trusted root and takes effect at the next start of keyless serve.",
    )
    rotate.add_argument("service", choices=["ca", "tsa", "log"])
    rotate.add_argument("--data-dir", type=Path, help="the stack's data directory")
    rotate.add_argument("--database", help="the stack's database URL (default: DIR's SQLite)")
    rotate.add_argument("--config", type=Path, help="TOML config file (default: DIR/keyless.toml)")
    rotate.add_argument(
        "--kek-file", type=Path, metavar="FILE",
        help="the key-encryption key file the serve processes use (required with PostgreSQL; "
        "also KEYLESS_KEK_FILE)",
    )
    rotate.add_argument(
        "--overlap-hours", type=float, default=1.0,
        help="how long the old generation stays valid after the rotation (default: 1)",
    )
    hashing = actions.add_parser(
        "hash-password", help="print the scrypt hash of a password for keyless.toml",
        description="Read a password (prompted on a terminal, else the first line of standard "
        "input) and print its scrypt hash for an [[oidc_users]] password_hash entry.",
    )
    hashing.set_defaults(admin_run=hash_password)
    vkeys = actions.add_parser(
        "vkeys", help="print the vkey of each witnessable log of the instance",
        description="Print the C2SP vkey of each Rekor v2 log (shard) of the instance, read "
        "from the trusted root it published in DIR, for witness operators "
        "(keyless witness serve --log VKEY). Rekor v1 and the CT log have no C2SP log vkey.",
    )
    vkeys.add_argument("--data-dir", type=Path, help="the stack's data directory")
    vkeys.set_defaults(admin_run=print_vkeys)
    parser.set_defaults(run=run)


def hash_password(args: argparse.Namespace) -> int:
    """Print ``scrypt$N$r$p$salt$hash`` of a password read without echo (RFC 7914)."""
    import getpass

    from keyless.services.oidc.accounts import hash_secret

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("keyless admin: the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("keyless admin: the password is empty", file=sys.stderr)
        return 2
    print(hash_secret(password))
    return 0


def print_vkeys(args: argparse.Namespace) -> int:
    """One vkey per line for the Ed25519 (Rekor v2) logs in ``DIR/trusted_root.json``."""
    import base64
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from keyless.formats.note_keys import name_from_base_url
    from keyless.formats.vkey import VerifierKey
    from keyless.server.config import default_data_dir

    path = (args.data_dir or default_data_dir()) / "trusted_root.json"
    try:
        root = json.loads(path.read_text(encoding="utf-8"))
        found = []
        for tlog in root.get("tlogs", []):
            raw = base64.b64decode(tlog["publicKey"]["rawBytes"])
            key = serialization.load_der_public_key(raw)
            if isinstance(key, ed25519.Ed25519PublicKey):
                found.append(VerifierKey.for_ed25519(name_from_base_url(tlog["baseUrl"]), key))
    except FileNotFoundError:
        print(f"keyless admin vkeys: {path} does not exist; start keyless serve once",
              file=sys.stderr)
        return 1
    except (ValueError, KeyError, TypeError) as exc:
        print(f"keyless admin vkeys: {path} is not a trusted root: {exc}", file=sys.stderr)
        return 1
    for vkey in found:
        print(vkey.encode())
    return 0


def run(args: argparse.Namespace) -> int:
    """Record the new generation; print what happens next."""
    if getattr(args, "admin_run", None) is not None:
        result: int = args.admin_run(args)
        return result
    import asyncio
    import os
    from datetime import timedelta

    from keyless.errors import ConfigError
    from keyless.server import kek
    from keyless.server.config import load_settings
    from keyless.server.datadir import DataDirLock
    from keyless.server.rotation import rotate
    from keyless.server.secrets import FileSecrets, Secrets, SharedSecrets
    from keyless.storage import Storage

    async def main() -> str:
        kek_file = args.kek_file or (
            Path(os.environ[kek.ENV]) if os.environ.get(kek.ENV) else None
        )
        settings = load_settings(
            data_dir=args.data_dir, config_file=args.config, database_url=args.database,
            kek_file=kek_file,
        )
        lock = DataDirLock(settings.data_dir)
        storage: Storage | None = None
        try:
            secrets: Secrets
            if settings.is_postgres:
                from keyless.server.wiring_context import open_store

                sealer = kek.load_or_create(
                    kek.kek_path(settings.kek_file, settings.data_dir, shared=True)
                )
                storage = await open_store(settings)
                secrets = SharedSecrets(storage.kv, sealer)
            else:
                if not (settings.data_dir / "keys").is_dir():
                    raise ConfigError(f"{settings.data_dir} holds no keyless stack")
                lock.acquire(wait=False)  # refuses while keyless serve owns the directory
                secrets = FileSecrets(settings.data_dir / "keys")
            services = ("rekor-v2", "rekor-v1") if args.service == "log" else (args.service,)
            created = []
            for service in services:
                generation = await rotate(
                    secrets, service, overlap=timedelta(hours=args.overlap_hours)
                )
                created.append(generation.id)
            return ", ".join(created)
        finally:
            lock.release()
            if storage is not None:
                await storage.close()

    try:
        new_id = asyncio.run(main())
    except ConfigError as exc:
        print(f"keyless admin rotate: {exc}", file=sys.stderr)
        return 2
    print(
        f"new {args.service} generation(s) {new_id} recorded; it takes effect at the next start "
        "of keyless serve (restart the processes one by one on PostgreSQL)",
        file=sys.stderr,
    )
    return 0
