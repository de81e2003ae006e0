"""``keyless trust-instance URL ROOT.json``: pin a keyless instance's TUF root once.

::

    keyless trust-instance URL ROOT.json   # ROOT.json: the operator's DIR/tuf-root.json

Like ``sigstore --instance URL trust-instance ROOT.json``. The root is stored for ``URL`` (the
same URL later given to ``--server``) in the user data dir, and a first TUF refresh from
``URL/tuf`` proves the instance holds its keys; only then does the pin replace an earlier one.
From then on ``--server URL`` trusts what that repository signs, and nothing else
(:mod:`keyless.trust.instances`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(
        name,
        help=help_text,
        description="Pin the TUF root of the keyless instance at URL: `--server URL` then "
        "refreshes that instance's trusted root and signing config through its TUF repository "
        "(URL/tuf) from this root, and refuses a server that cannot sign with its keys. Get "
        "ROOT.json from the instance's operator (the file DIR/tuf-root.json of `keyless "
        "serve`), or check its SHA-256 with them.",
    )
    parser.add_argument("url", metavar="URL", help="the instance, as given to --server")
    parser.add_argument("root", metavar="ROOT.json", help="the instance's TUF root metadata")
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    from keyless.errors import Error
    from keyless.trust.instances import MAX_ROOT, fingerprint, normalize_url, pin

    try:
        url = normalize_url(args.url)
    except Error as exc:
        args.parser.error(str(exc).replace("--server", "URL"))
    try:
        with open(args.root, "rb") as f:
            root_json = f.read(MAX_ROOT + 1)
    except OSError as exc:
        args.parser.error(f"cannot read {args.root}: {exc.strerror}")
    if len(root_json) > MAX_ROOT:
        args.parser.error(f"{args.root} is larger than {MAX_ROOT >> 10} KiB")
    try:
        config = pin(url, root_json, where=args.root)
    except Error as exc:
        print(f"trust-instance failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    root = config.trusted_root
    print(
        f"pinned {url}: TUF root {fingerprint(root_json)}; its trusted root lists "
        f"{len(root.certificate_authorities)} CA(s), {len(root.tlogs)} transparency log(s), "
        f"{len(root.ctlogs)} CT log(s), {len(root.timestamp_authorities)} TSA(s)",
        file=sys.stderr,
    )
    return 0
