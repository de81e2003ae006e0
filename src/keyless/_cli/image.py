"""``keyless image``: sign, attest and verify container images in their registry (issue #15).

::

    keyless image sign REF... [--identity-token T] [--trust-config F | --server URL]
                              [--format bundle|legacy] [-a KEY=VALUE]... [--recursive]
    keyless image verify REF (--cert-identity ID | --cert-identity-regexp RE)
                             (--cert-oidc-issuer URL | --cert-oidc-issuer-regexp RE)
                             [-a KEY=VALUE]... [--output json]   (cosign's --certificate-* too)
    keyless image attest REF --predicate-type URI --predicate P.json [--format bundle|legacy]
    keyless image verify-attestation REF --cert-identity … --cert-oidc-issuer …
                                         [--predicate-type URI]
    keyless image tree REF

``REF`` is ``host[:port]/repo[:tag|@sha256:HEX]``. Registry options on every subcommand:
``--registry-cacert PEM``, ``--allow-http-registry``; credentials come from the Docker config.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from keyless._cli.verify import add_policy_options, add_trust_options, warn

SUBCOMMANDS = {
    "sign": "sign images (the manifest digest a tag resolves to)",
    "verify": "verify an image's signatures against an identity",
    "attest": "sign an in-toto attestation about an image",
    "verify-attestation": "verify an image's attestations against an identity",
    "tree": "list the signatures, attestations and other referrers of an image",
}
REGISTRY_HELP = """\
registry: credentials come from the Docker config ($DOCKER_CONFIG/config.json, else
~/.docker/config.json: auths, identitytoken, credHelpers/credsStore through docker-credential-*
programs). HTTPS with the system CAs (plus --registry-cacert); plain HTTP only for a loopback
registry that does not speak TLS, or with --allow-http-registry.

formats: bundle (default; cosign 3, actions/attest): a Sigstore bundle v0.3 stored as an OCI 1.1
referrer of the image (or in the sha256-HEX referrers index where the registry lacks the
referrers API). legacy (cosign 2): the sha256-HEX.sig / .att tags; needs a Rekor v1 log."""


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(
        name,
        help=help_text,
        description="Sign, attest and verify container images where they live: in their OCI "
        "registry, in the formats cosign and actions/attest use.",
        epilog=REGISTRY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="image_command", metavar="SUBCOMMAND")
    for word, text in SUBCOMMANDS.items():
        _add_subcommand(commands, word, text)
    parser.set_defaults(run=_no_subcommand, parser=parser)


def _no_subcommand(args: argparse.Namespace) -> int:
    args.parser.print_help(sys.stderr)
    return 2


def _registry_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("registry")
    group.add_argument("--registry-cacert", metavar="PEM", help="trust this CA for the registry")
    group.add_argument(
        "--allow-http-registry",
        action="store_true",
        help="allow plain HTTP to a registry that is not on the loopback",
    )


def _annotation(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def _add_subcommand(commands: Any, word: str, text: str) -> None:
    parser = commands.add_parser(
        word,
        help=text,
        description=text[0].upper() + text[1:] + ".",
        epilog=REGISTRY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if word == "sign":
        parser.add_argument("refs", metavar="REF", nargs="+", help="images to sign")
    else:
        parser.add_argument("image", metavar="REF", help="the image")
    if word in ("sign", "attest"):
        parser.add_argument(
            "--format",
            dest="fmt",
            choices=("bundle", "legacy"),
            default="bundle",
            help="bundle (OCI 1.1 referrer, default) or legacy (cosign 2 .sig/.att tags)",
        )
        parser.add_argument(
            "--recursive",
            action="store_true",
            help="for a multi-platform index, also sign each platform's manifest",
        )
        identity = parser.add_argument_group("identity")
        identity.add_argument(
            "--identity-token",
            metavar="T",
            help="OIDC identity token (default: $SIGSTORE_IDENTITY_TOKEN, ambient CI "
            "credentials, or an interactive sign-in)",
        )
        parser.add_argument(
            "--rekor-version",
            type=int,
            choices=(1, 2),
            help="use a Rekor v1 or v2 log (default: the newest; legacy needs 1)",
        )
        add_trust_options(parser)
    if word in ("sign", "verify"):
        parser.add_argument(
            "-a",
            "--annotation",
            dest="annotations",
            metavar="KEY=VALUE",
            type=_annotation,
            action="append",
            default=[],
            help="sign: add to the signed statement; verify: require it",
        )
    if word == "attest":
        parser.add_argument("--predicate-type", metavar="URI", required=True)
        parser.add_argument("--predicate", metavar="P.json", required=True)
    if word in ("verify", "verify-attestation"):
        _verification_options(parser, attestation=word == "verify-attestation")
    _registry_options(parser)
    parser.set_defaults(run=RUNNERS[word], parser=parser)


def _verification_options(parser: argparse.ArgumentParser, *, attestation: bool) -> None:
    add_policy_options(parser)
    if attestation:
        parser.add_argument("--predicate-type", metavar="URI", help="only this predicate type")
    parser.add_argument(
        "--output", choices=("text", "json"), default="text", help="json: details on stdout"
    )
    add_trust_options(parser)


# --- runners ------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _reference(args: argparse.Namespace, text: str) -> Any:
    from keyless.errors import InvalidInput
    from keyless.oci.reference import parse_reference

    try:
        return parse_reference(text)
    except InvalidInput as exc:
        args.parser.error(str(exc))


def _registry(args: argparse.Namespace, ref: Any) -> Any:
    from keyless.image import open_registry

    return open_registry(ref, cacert=args.registry_cacert, allow_http=args.allow_http_registry)


def _signer(args: argparse.Namespace) -> Any:
    from keyless._cli.sign import make_signer

    if args.fmt == "legacy":
        if args.rekor_version == 2:
            args.parser.error("--format legacy needs a Rekor v1 log (its signed entry timestamp)")
        args.rekor_version = 1  # the .sig annotations carry a Rekor v1 SET
    return make_signer(args)


def run_sign(args: argparse.Namespace) -> int:
    from keyless.errors import Error
    from keyless.image import sign_image

    refs = [_reference(args, r) for r in args.refs]
    try:
        signer = _signer(args)
        for ref in refs:
            with _registry(args, ref) as registry:
                done = sign_image(
                    signer,
                    registry,
                    ref,
                    fmt=args.fmt,
                    annotations=dict(args.annotations),
                    recursive=args.recursive,
                    on_warning=warn,
                )
            for signed in done:
                print(
                    f"signed {signed.reference} ({signed.format}: {signed.location})",
                    file=sys.stderr,
                )
                print(signed.reference)
    except Error as exc:
        print(f"signing failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    return 0


def run_attest(args: argparse.Namespace) -> int:
    from keyless._cli.attest import read_predicate
    from keyless.errors import Error
    from keyless.image import attest_image

    ref = _reference(args, args.image)
    predicate = read_predicate(args)
    try:
        signer = _signer(args)
        with _registry(args, ref) as registry:
            done = attest_image(
                signer,
                registry,
                ref,
                args.predicate_type,
                predicate,
                fmt=args.fmt,
                recursive=args.recursive,
                on_warning=warn,
            )
    except Error as exc:
        print(f"attestation failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    for signed in done:
        print(f"attested {signed.reference} ({signed.format}: {signed.location})", file=sys.stderr)
        print(signed.reference)
    return 0


def _verify(args: argparse.Namespace, *, attestation: bool) -> int:
    from keyless._cli.verify import check_identity_options, policy_for, trusted_root_for
    from keyless.errors import Error
    from keyless.image import statements_json, verify_image, verify_image_attestations
    from keyless.verify.verifier import Verifier

    ref = _reference(args, args.image)
    check_identity_options(args)
    try:
        verifier = Verifier(trusted_root_for(args))
        policy = policy_for(args)
        with _registry(args, ref) as registry:
            if attestation:
                found = verify_image_attestations(
                    verifier, registry, ref, policy, predicate_type=args.predicate_type
                )
            else:
                found = verify_image(
                    verifier, registry, ref, policy, annotations=dict(args.annotations)
                )
    except Error as exc:
        print(f"verification failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    what = "attestation" if attestation else "signature"
    plural = "" if len(found) == 1 else "s"
    print(
        f"OK: {found[0].reference} ({len(found)} valid {what}{plural}, {found[0].format} format)",
        file=sys.stderr,
    )
    if args.output == "json":
        print(statements_json(found))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    return _verify(args, attestation=False)


def run_verify_attestation(args: argparse.Namespace) -> int:
    return _verify(args, attestation=True)


def run_tree(args: argparse.Namespace) -> int:
    from keyless.errors import Error
    from keyless.image import image_tree

    ref = _reference(args, args.image)
    try:
        with _registry(args, ref) as registry:
            target, entries = image_tree(registry, ref)
    except Error as exc:
        print(f"tree failed: {_one_line(exc)}", file=sys.stderr)
        return 1
    print(f"{target.reference} ({target.manifest.media_type})")
    if not entries:
        print("└── (no signatures, attestations or other referrers)")
    for i, e in enumerate(entries):
        branch = "└──" if i == len(entries) - 1 else "├──"
        detail = e.predicate_type or e.artifact_type or ""
        count = (
            f" ({e.count} layer{'s' if e.count != 1 else ''})"
            if e.kind.startswith("legacy")
            else ""
        )
        print(f"{branch} {e.kind}: {e.location}{count}" + (f" [{detail}]" if detail else ""))
    return 0


RUNNERS = {
    "sign": run_sign,
    "verify": run_verify,
    "attest": run_attest,
    "verify-attestation": run_verify_attestation,
    "tree": run_tree,
}
