"""``keyless attest FILE --predicate-type URI --predicate P.json`` (contracts.md §4).

Builds an in-toto Statement v1 whose only subject is FILE (name = its base name, digest sha256),
signs it as a DSSE envelope (payloadType ``application/vnd.in-toto+json``) and writes a v0.3
bundle, like ``sigstore attest`` (interop.md §3.1).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from keyless._cli.sign import add_signing_options, make_signer

STATEMENT_V1 = "https://in-toto.io/Statement/v1"


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("file", metavar="FILE", help="the artifact the statement is about")
    parser.add_argument("--predicate-type", required=True, metavar="URI")
    parser.add_argument("--predicate", required=True, metavar="P.json", help="predicate JSON")
    parser.add_argument("--bundle", metavar="OUT", help="output (default: FILE.sigstore.json)")
    add_signing_options(parser)
    parser.set_defaults(run=run)


def statement_for(path: str, predicate_type: str, predicate: Any) -> bytes:
    """An in-toto Statement v1 about one file."""
    import hashlib
    import json
    import os

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    statement = {
        "_type": STATEMENT_V1,
        "subject": [{"name": os.path.basename(path), "digest": {"sha256": h.hexdigest()}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }
    return json.dumps(statement, separators=(",", ":")).encode()


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from keyless.errors import ConfigError, Error

    try:
        try:
            predicate = json.loads(Path(args.predicate).read_bytes())
        except ValueError as exc:
            raise ConfigError(f"{args.predicate} is not JSON") from exc
        if not isinstance(predicate, dict):
            raise ConfigError(f"{args.predicate} must hold a JSON object")
        statement = statement_for(args.file, args.predicate_type, predicate)
        bundle = make_signer(args).sign_statement(statement)
        out = args.bundle or f"{args.file}.sigstore.json"
        Path(out).write_bytes(bundle.to_bytes())
    except (Error, OSError) as exc:
        print(f"attestation failed: {exc}", file=sys.stderr)
        return 1
    print(f"attested {args.file} -> {out}", file=sys.stderr)
    return 0
