"""``keyless-conformance``: the sigstore-conformance client protocol (interop.md §4.1).

::

    keyless-conformance sign-bundle [--staging] [--in-toto] --identity-token T --bundle OUT
                        [--trusted-root TR] [--signing-config SC] FILE
    keyless-conformance verify-bundle [--staging] --bundle B
                        (--certificate-identity ID --certificate-oidc-issuer URL | --key PEM)
                        [--trusted-root TR] FILE_OR_DIGEST

Exit 0 on success, 1 with one sentence on stderr otherwise. The default trusted root is the
public-good production root shipped with keyless; verification never touches the network.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from keyless.errors import Error


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keyless-conformance")
    sub = parser.add_subparsers(dest="command", required=True)

    sign = sub.add_parser("sign-bundle")
    sign.add_argument("--staging", action="store_true")
    sign.add_argument("--in-toto", action="store_true")
    sign.add_argument("--identity-token", required=True)
    sign.add_argument("--bundle", required=True)
    sign.add_argument("--trusted-root")
    sign.add_argument("--signing-config")
    sign.add_argument("file")

    verify = sub.add_parser("verify-bundle")
    verify.add_argument("--staging", action="store_true")
    verify.add_argument("--bundle", required=True)
    verify.add_argument("--certificate-identity")
    verify.add_argument("--certificate-oidc-issuer")
    verify.add_argument("--key")
    verify.add_argument("--trusted-root")
    verify.add_argument("file_or_digest")
    return parser


def _verify(args: argparse.Namespace) -> None:
    from pathlib import Path

    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from keyless.errors import ConfigError
    from keyless.trust.production import production_trusted_root
    from keyless.trust.sources import load_trusted_root
    from keyless.verify.artifact import Artifact
    from keyless.verify.policy import Identity
    from keyless.verify.verifier import Verifier

    if args.staging:
        raise ConfigError("--staging: keyless ships only the production trusted root")
    root = load_trusted_root(args.trusted_root) if args.trusted_root else production_trusted_root()
    artifact = Artifact.from_argument(args.file_or_digest)
    bundle = Path(args.bundle).read_bytes()
    verifier = Verifier(root)
    if args.key:
        try:
            key = load_pem_public_key(Path(args.key).read_bytes())
        except ValueError as exc:
            raise ConfigError(f"{args.key} is not a PEM public key") from exc
        verifier.verify(bundle, artifact, key=key)
        return
    if not args.certificate_identity or not args.certificate_oidc_issuer:
        raise ConfigError("give --certificate-identity and --certificate-oidc-issuer, or --key")
    policy = Identity(issuer=args.certificate_oidc_issuer, identity=args.certificate_identity)
    verifier.verify(bundle, artifact, policy=policy)


def _sign(args: argparse.Namespace) -> None:
    from pathlib import Path

    from keyless.errors import ConfigError
    from keyless.sign import Signer
    from keyless.trust.sources import load_signing_config, load_trusted_root

    if args.staging or not args.signing_config or not args.trusted_root:
        raise ConfigError("sign-bundle needs --trusted-root and --signing-config (no --staging)")
    signer = Signer.from_config(
        load_trusted_root(args.trusted_root),
        load_signing_config(args.signing_config),
        identity_token=args.identity_token,
    )
    data = Path(args.file).read_bytes()
    bundle = signer.sign_statement(data) if args.in_toto else signer.sign_artifact(data)
    Path(args.bundle).write_bytes(bundle.to_bytes())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one conformance command; 0 = success (interop.md §4.1)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "verify-bundle":
            _verify(args)
        else:
            _sign(args)
    except (Error, OSError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
