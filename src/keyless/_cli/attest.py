"""``keyless attest FILE --predicate-type URI --predicate P.json`` (contracts.md §4).

Builds an in-toto Statement v1 whose only subject is FILE (name = its base name, digest sha256),
signs it as a DSSE envelope (payloadType ``application/vnd.in-toto+json``) and writes a v0.3
bundle (:meth:`keyless.sign.Signer.attest`), like ``sigstore attest`` (interop.md §3.1). Outputs
follow ``keyless sign``: checked before signing, never replaced without ``--overwrite``, written
atomically.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from keyless._cli.sign import (
    add_signing_options,
    check_input,
    check_output,
    make_signer,
    one_line,
    write_output,
)
from keyless._cli.verify import ENVIRONMENT_HELP


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(
        name,
        help=help_text,
        description="Sign an in-toto Statement v1 about FILE (subject: its name and SHA-256) "
        "with the given predicate, as a DSSE envelope in a Sigstore bundle v0.3 "
        "(FILE.sigstore.json unless --bundle). Check it with `keyless verify-attestation`.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="the artifact the statement is about")
    parser.add_argument(
        "--predicate-type",
        required=True,
        metavar="URI",
        help="the predicate's type, e.g. https://slsa.dev/provenance/v1",
    )
    parser.add_argument(
        "--predicate",
        required=True,
        metavar="P.json",
        help="a file holding the predicate (a JSON object)",
    )
    parser.add_argument("--bundle", metavar="OUT", help="output (default: FILE.sigstore.json)")
    add_signing_options(parser)
    parser.set_defaults(run=run, parser=parser)


def read_predicate(args: argparse.Namespace) -> dict[str, Any]:
    """The predicate JSON object; an unreadable or non-object file is a usage error."""
    import json
    from pathlib import Path

    try:
        predicate: Any = json.loads(Path(args.predicate).read_bytes())
    except OSError as exc:
        args.parser.error(f"cannot read the predicate {args.predicate}: {exc.strerror}")
    except ValueError:
        args.parser.error(f"the predicate {args.predicate} is not JSON")
    if not isinstance(predicate, dict):
        args.parser.error(f"the predicate {args.predicate} must hold a JSON object")
    return dict(predicate)


def run(args: argparse.Namespace) -> int:
    import os

    from keyless.errors import Error

    if args.file == "-":
        args.parser.error("attest needs a FILE: its name is the statement's subject (not -)")
    check_input(args, args.file)
    out = args.bundle or f"{args.file}.sigstore.json"
    check_output(args, out, {os.path.realpath(args.file), os.path.realpath(args.predicate)})
    predicate = read_predicate(args)
    try:
        signed = make_signer(args).attest(args.file, args.predicate_type, predicate)
        write_output(out, signed.to_bytes(), overwrite=args.overwrite)
    except (Error, OSError) as exc:
        print(f"attestation failed: {one_line(exc)}", file=sys.stderr)
        return 1
    print(f"attested {args.file} -> {out}", file=sys.stderr)
    return 0
