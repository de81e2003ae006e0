"""``keyless sign FILE...`` (contracts.md §4): one certificate for all files, bundles v0.3.

::

    keyless sign FILE... [--bundle OUT] [--identity-token T] [--trust-config F | --server URL]
                 [--rekor-version 1|2]

``--bundle`` (one file only) defaults to ``FILE.sigstore.json``. The services come from the
signing config of ``--trust-config`` or of ``--server URL``'s ``client-trust-config.json``.
Without ``--identity-token`` the token comes from ``$SIGSTORE_ID_TOKEN``, else from ambient CI
credentials (``id``; GitHub Actions, GitLab, Buildkite, Google Cloud). Progress is shown with
``rich`` when several files are signed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from keyless._cli.verify import add_trust_options


def add_signing_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``sign`` and ``attest``."""
    parser.add_argument("--identity-token", metavar="T", help="OIDC identity token (JWT)")
    parser.add_argument(
        "--rekor-version", type=int, choices=(1, 2), help="force Rekor v1 or v2 (default: config)"
    )
    add_trust_options(parser)


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("files", metavar="FILE", nargs="+", help="artifacts to sign")
    parser.add_argument("--bundle", metavar="OUT", help="output (one FILE only)")
    add_signing_options(parser)
    parser.set_defaults(run=run)


def identity_token(args: argparse.Namespace, signing_config: Any = None) -> str:
    """The identity token: flag, ``$SIGSTORE_ID_TOKEN``, ambient CI credentials, or (on a
    terminal) the browser / device flow against the signing config's OIDC issuer."""
    from keyless.oidc import get_identity_token

    oidc_urls = getattr(signing_config, "oidc_urls", ()) or ()
    issuer = oidc_urls[0].url if oidc_urls else None
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    token = get_identity_token(
        explicit=args.identity_token or os.environ.get("SIGSTORE_ID_TOKEN"),
        issuer=issuer,
        interactive="auto" if interactive else "none",
    )
    return token.raw


def make_signer(args: argparse.Namespace) -> Any:
    """A :class:`keyless.sign.Signer` from the trust options."""
    from keyless.errors import ConfigError
    from keyless.sign import Signer
    from keyless.trust.sources import resolve_trust

    if args.trust_config is None and args.server is None:
        raise ConfigError("signing needs --trust-config FILE or --server URL (a signing config)")
    config = resolve_trust(trust_config=args.trust_config, server=args.server)
    if config.signing_config is None:
        raise ConfigError("the trust config has no signing config")
    return Signer.from_config(
        config.trusted_root,
        config.signing_config,
        identity_token=identity_token(args, config.signing_config),
        rekor_version=args.rekor_version,
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from keyless.errors import Error
    from keyless.sign import sign_files

    if args.bundle and len(args.files) > 1:
        print("--bundle can only be used with a single FILE", file=sys.stderr)
        return 2
    try:
        signer = make_signer(args)
        outputs = {f: args.bundle or f"{f}.sigstore.json" for f in args.files}

        def write(path: str, bundle: Any) -> None:
            Path(outputs[path]).write_bytes(bundle.to_bytes())

        if len(args.files) == 1:
            sign_files(signer, args.files, on_done=write)
        else:
            from rich.progress import Progress

            with Progress(transient=False) as progress:
                task = progress.add_task("signing", total=len(args.files))

                def done(path: str, bundle: Any) -> None:
                    write(path, bundle)
                    progress.advance(task)

                sign_files(signer, args.files, on_done=done)
    except (Error, OSError) as exc:
        print(f"signing failed: {exc}", file=sys.stderr)
        return 1
    for f in args.files:
        print(f"signed {f} -> {outputs[f]}", file=sys.stderr)
    return 0
