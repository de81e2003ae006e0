"""``keyless verify`` and ``keyless verify-attestation`` (contracts.md §4).

::

    keyless verify FILE --bundle B --cert-identity ID --cert-oidc-issuer URL
                   [--trust-config F | --server URL] [--offline]
    keyless verify-attestation FILE --bundle B --cert-identity ID --cert-oidc-issuer URL ...

Exit 0 on success, 1 with one clear sentence on stderr otherwise. ``FILE`` may be
``sha256:<hex>``. This module imports only ``argparse`` at load time; the verify path imports
cryptography and rfc3161-client but never httpx, tuf or rich with ``--offline`` or
``--trust-config`` (cold-start target ≤ 300 ms).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_trust_options(parser: argparse.ArgumentParser) -> None:
    """``--trust-config F | --server URL`` and the TUF cache knobs, shared by every command."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--trust-config", metavar="FILE", help="a ClientTrustConfig JSON file")
    group.add_argument(
        "--server", metavar="URL", help="a keyless instance (fetches URL/client-trust-config.json)"
    )
    parser.add_argument(
        "--tuf-cache", metavar="DIR", help="TUF cache directory (default: user cache dir)"
    )
    parser.add_argument(
        "--tuf-refresh-window",
        metavar="SECONDS",
        type=float,
        default=24 * 3600.0,
        help="refresh the default trust root through TUF at most this often (default: 1 day)",
    )


def add_parser(sub: Any, name: str, help_text: str) -> None:
    """Register ``verify`` or ``verify-attestation`` (same options; the latter needs DSSE)."""
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("file", metavar="FILE", help="the artifact, or sha256:<hex>")
    parser.add_argument("--bundle", metavar="B", help="the bundle (default: FILE.sigstore.json)")
    identity = parser.add_mutually_exclusive_group()
    identity.add_argument("--cert-identity", metavar="ID", help="expected SAN, exactly")
    identity.add_argument(
        "--cert-identity-regexp", metavar="RE", help="expected SAN as a full-match regex"
    )
    parser.add_argument("--cert-oidc-issuer", metavar="URL", help="expected OIDC issuer")
    parser.add_argument("--key", metavar="PEM", help="verify a managed-key bundle with this key")
    gh = parser.add_argument_group("GitHub Actions claims (optional)")
    gh.add_argument("--repository", help="owner/name of the source repository")
    gh.add_argument("--ref", help="git ref, e.g. refs/tags/v1.0")
    gh.add_argument("--sha", help="commit SHA")
    gh.add_argument("--trigger", help="workflow trigger event")
    add_trust_options(parser)
    parser.add_argument("--offline", action="store_true", help="no network at all (no TUF refresh)")
    parser.set_defaults(run=run, attestation=name == "verify-attestation")


def trusted_root_for(args: argparse.Namespace) -> Any:
    """The trusted root chosen by ``--trust-config`` / ``--server`` / default (+ TUF)."""
    from keyless.trust.sources import resolve_trust

    return resolve_trust(
        trust_config=args.trust_config,
        server=args.server,
        offline=getattr(args, "offline", False),
        tuf_cache=args.tuf_cache,
        refresh_window=args.tuf_refresh_window,
    ).trusted_root


def _policy(args: argparse.Namespace) -> Any:
    from keyless.errors import ConfigError
    from keyless.verify.policy import AllOf, GitHubWorkflow, Identity

    if not args.cert_oidc_issuer or not (args.cert_identity or args.cert_identity_regexp):
        raise ConfigError(
            "give --cert-identity (or --cert-identity-regexp) and --cert-oidc-issuer, or --key"
        )
    policies: list[Any] = [
        Identity(
            issuer=args.cert_oidc_issuer,
            identity=args.cert_identity,
            identity_regex=args.cert_identity_regexp,
        )
    ]
    if any((args.repository, args.ref, args.sha, args.trigger)):
        policies.append(
            GitHubWorkflow(
                repository=args.repository, ref=args.ref, sha=args.sha, trigger=args.trigger
            )
        )
    return AllOf(policies)


def verify(args: argparse.Namespace) -> str:
    """Verify and return the success message (raises keyless errors)."""
    from pathlib import Path

    from keyless.errors import ConfigError
    from keyless.verify.artifact import Artifact
    from keyless.verify.errors import DSSEError
    from keyless.verify.verifier import Verifier

    bundle_path = args.bundle or f"{args.file}.sigstore.json"
    if args.bundle is None and args.file.startswith("sha256:"):
        raise ConfigError("--bundle is required when verifying a digest")
    try:
        bundle = Path(bundle_path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read bundle {bundle_path!r}: {exc.strerror}") from exc
    artifact = Artifact.from_argument(args.file)
    verifier = Verifier(trusted_root_for(args))
    if args.key:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            key = load_pem_public_key(Path(args.key).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{args.key} is not a readable PEM public key") from exc
        result = verifier.verify(bundle, artifact, key=key)
    else:
        result = verifier.verify(bundle, artifact, policy=_policy(args))
    if args.attestation and result.payload_type is None:
        raise DSSEError("the bundle holds a message signature, not an attestation")
    if args.attestation:
        predicate = (result.statement or {}).get("predicateType", "?")
        return f"OK: {args.file} (attestation, predicate {predicate})"
    return f"OK: {args.file}"


def run(args: argparse.Namespace) -> int:
    """Entry point of the subcommand: 0 on success, 1 with one sentence on stderr."""
    from keyless.errors import Error

    try:
        message = verify(args)
    except Error as exc:
        print(f"verification failed: {exc}", file=sys.stderr)
        return 1
    print(message, file=sys.stderr)
    return 0
