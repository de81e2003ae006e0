"""``keyless get-identity-token``: print an OIDC identity token, as ``sigstore
get-identity-token`` does.

::

    keyless get-identity-token [--oidc-issuer URL] [--flow auto|browser|device]
                               [--oidc-client-id ID] [--oidc-disable-ambient-providers]
                               [--trust-config F | --server URL]

The token goes to stdout (one line: ``TOKEN=$(keyless get-identity-token)``); prompts and
messages go to stderr. Precedence as for signing (:mod:`keyless.oidc`): ambient CI credentials
(unless disabled), else an interactive flow against ``--oidc-issuer`` or the signing config's
OIDC issuer (``--trust-config`` / ``--server`` / their ``KEYLESS_*`` variables / public good).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from keyless._cli.verify import ENVIRONMENT_HELP


def add_parser(sub: Any, name: str, help_text: str) -> None:
    from keyless._cli.verify import add_trust_options

    parser = sub.add_parser(
        name,
        help=help_text,
        description="Get an OIDC identity token and print it on stdout: from ambient CI "
        "credentials (GitHub Actions, GitLab, Buildkite, Google Cloud, CircleCI), else by "
        "signing in with a browser (authorization code + PKCE) or the device flow. Give it "
        "to `keyless sign --identity-token` or set SIGSTORE_ID_TOKEN.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--oidc-issuer",
        metavar="URL",
        help="the OIDC issuer to sign in with (default: the signing config's)",
    )
    parser.add_argument(
        "--oidc-client-id", metavar="ID", default="sigstore", help="OAuth client id (sigstore)"
    )
    parser.add_argument(
        "--flow",
        choices=("auto", "browser", "device"),
        default="auto",
        help="auto: the browser if one opens, else the device flow (default: auto)",
    )
    parser.add_argument(
        "--oidc-disable-ambient-providers",
        action="store_true",
        help="do not look for ambient CI credentials; always sign in",
    )
    add_trust_options(parser)
    parser.set_defaults(run=run, parser=parser)


def _issuer(args: argparse.Namespace) -> str | None:
    """``--oidc-issuer``, else the signing config's first OIDC URL (None if there is none)."""
    if args.oidc_issuer:
        return str(args.oidc_issuer)
    from keyless._cli.environment import apply_trust_environment
    from keyless._cli.verify import warn
    from keyless.trust.sources import resolve_trust

    apply_trust_environment(args)
    config = resolve_trust(
        trust_config=args.trust_config,
        server=args.server,
        allow_insecure_http=args.allow_insecure_http,
        tuf_cache=args.tuf_cache,
        refresh_window=args.tuf_refresh_window,
        on_warning=warn,
    )
    urls = getattr(config.signing_config, "oidc_urls", ()) or ()
    return str(urls[0].url) if urls else None


def run(args: argparse.Namespace) -> int:
    from keyless.errors import ConfigError, Error
    from keyless.oidc import detect_ambient, get_identity_token

    try:
        ambient = (
            None if args.oidc_disable_ambient_providers else detect_ambient(args.oidc_client_id)
        )
        if ambient:
            token = get_identity_token(explicit=ambient, client_id=args.oidc_client_id)
        else:
            issuer = _issuer(args)
            if issuer is None:
                raise ConfigError("the signing config names no OIDC issuer; give --oidc-issuer")
            token = get_identity_token(
                issuer=issuer, client_id=args.oidc_client_id, ambient=None, interactive=args.flow
            )
    except Error as exc:
        print(f"get-identity-token failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(f"identity token for {token.identity!r} from {token.issuer!r}", file=sys.stderr)
    sys.stdout.write(token.raw + "\n")
    sys.stdout.flush()
    return 0
