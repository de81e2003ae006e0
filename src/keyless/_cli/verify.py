"""``keyless verify`` and ``keyless verify-attestation`` (contracts.md §4).

::

    keyless verify FILE --bundle B --cert-identity ID --cert-oidc-issuer URL
                   [--trust-config F | --server URL [--allow-insecure-http]] [--offline]
    keyless verify-attestation FILE --bundle B --cert-identity ID --cert-oidc-issuer URL ...

Exit 0 on success, 1 with one clear sentence on stderr when verification fails, 2 for a wrong
command line. ``FILE`` may be ``sha256:<hex>``. This module imports only ``argparse`` at load
time; the verify path imports cryptography and rfc3161-client but never httpx, tuf or rich with
``--offline`` or ``--trust-config`` (issue #8: cold start ≤ 300 ms, no network when offline).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

#: FILE ``-``: the artifact is read from standard input
STDIN = "-"

TRUST_HELP = """\
trust: --trust-config FILE reads a ClientTrustConfig (as `sigstore --trust-config`); --server URL
uses a keyless instance's TUF repository (URL/tuf) from the root pinned once with `keyless
trust-instance URL ROOT.json`; an instance not pinned is trusted on first use with a warning that
shows its root's fingerprint (never over plain http to a host other than the loopback, unless
--allow-insecure-http). With neither, the public-good Sigstore instance's trusted root (shipped
with keyless) is used. TUF refreshes happen at most once per --tuf-refresh-window; if one fails
(no network), the cached or shipped root is used with a warning. --offline never touches the
network."""

#: the KEYLESS_* variables of :mod:`keyless._cli.environment` (imported only when a command runs)
ENVIRONMENT_HELP = """\
environment (a flag on the command line wins over its variable; empty = unset):
  KEYLESS_TRUST_CONFIG=FILE       --trust-config FILE
  KEYLESS_SERVER=URL              --server URL (either flag overrides both variables)
  KEYLESS_ALLOW_INSECURE_HTTP=1   --allow-insecure-http
  KEYLESS_TUF_CACHE=DIR           --tuf-cache DIR
  KEYLESS_TUF_REFRESH_WINDOW=S    --tuf-refresh-window S
  KEYLESS_OFFLINE=1               --offline (verify only)
  SIGSTORE_IDENTITY_TOKEN, SIGSTORE_ID_TOKEN   --identity-token (sign, attest)"""


def apply_trust_environment(args: argparse.Namespace) -> None:
    """Fill trust options not given as flags from ``KEYLESS_*`` (flags win; idempotent)."""
    from keyless._cli.environment import apply_trust_environment as apply

    apply(args)


def add_trust_options(parser: argparse.ArgumentParser) -> Any:
    """``--trust-config F | --server URL`` and the TUF cache knobs, shared by every command;
    returns the argument group (``verify`` adds ``--offline`` to it)."""
    trust = parser.add_argument_group("trust (default: public-good Sigstore via TUF)")
    group = trust.add_mutually_exclusive_group()
    group.add_argument(
        "--trust-config",
        metavar="FILE",
        help="a ClientTrustConfig JSON file (trusted root + signing config)",
    )
    group.add_argument(
        "--server",
        metavar="URL",
        help="a keyless instance (its TUF repository URL/tuf, from the root pinned with "
        "`keyless trust-instance`, else trusted on first use)",
    )
    trust.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="let --server trust an instance not pinned over plain http on a host other than "
        "the loopback (anyone on the path could answer)",
    )
    trust.add_argument(
        "--tuf-cache", metavar="DIR", help="TUF cache directory (default: the user cache dir)"
    )
    trust.add_argument(
        "--tuf-refresh-window",
        metavar="SECONDS",
        type=_seconds,
        default=None,
        help="refresh trusted roots through TUF at most this often (default: 86400)",
    )
    return trust


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def add_identity_options(parser: argparse.ArgumentParser, title: str) -> Any:
    """``--cert-identity[-regexp]`` and ``--cert-oidc-issuer[-regexp]``, each also under cosign's
    ``--certificate-*`` spelling; returns the argument group (``verify`` adds ``--key``).
    Check them with :func:`check_identity_options`; build the policy with :func:`policy_for`."""
    who = parser.add_argument_group(
        title,
        "A regexp must match the WHOLE value (Python re.fullmatch, as sigstore-python and "
        "cosign): 'alice@example\\.com' does not accept 'mallory-alice@example.com'; write "
        "'.*@example\\.com' for a family.",
    )
    identity = who.add_mutually_exclusive_group()
    identity.add_argument(
        "--cert-identity",
        "--certificate-identity",
        dest="cert_identity",
        metavar="ID",
        help="expected certificate identity (SAN), exactly",
    )
    identity.add_argument(
        "--cert-identity-regexp",
        "--certificate-identity-regexp",
        dest="cert_identity_regexp",
        metavar="RE",
        help="expected SAN as a regular expression matching the whole SAN",
    )
    issuer = who.add_mutually_exclusive_group()
    issuer.add_argument(
        "--cert-oidc-issuer",
        "--certificate-oidc-issuer",
        dest="cert_oidc_issuer",
        metavar="URL",
        help="expected OIDC issuer of the certificate, exactly",
    )
    issuer.add_argument(
        "--cert-oidc-issuer-regexp",
        "--certificate-oidc-issuer-regexp",
        dest="cert_oidc_issuer_regexp",
        metavar="RE",
        help="expected OIDC issuer as a regular expression matching the whole issuer",
    )
    return who


def check_identity_options(args: argparse.Namespace) -> None:
    """Both an identity and an issuer (exact or regexp) unless ``--key``; valid regexps."""
    error = args.parser.error
    identity = args.cert_identity or args.cert_identity_regexp
    issuer = args.cert_oidc_issuer or getattr(args, "cert_oidc_issuer_regexp", None)
    if getattr(args, "key", None):
        if identity or issuer:
            error("--key verifies a managed-key bundle; it cannot be combined with --cert-*")
        return
    if not identity or not issuer:
        error("give --cert-identity (or --cert-identity-regexp) and --cert-oidc-issuer, or --key")
    import re

    for flag, regex in (
        ("--cert-identity-regexp", args.cert_identity_regexp),
        ("--cert-oidc-issuer-regexp", getattr(args, "cert_oidc_issuer_regexp", None)),
    ):
        if regex:
            try:
                re.compile(regex)
            except re.error as exc:
                error(f"{flag} is not a valid regular expression: {exc}")


def add_policy_options(parser: argparse.ArgumentParser, *, key: bool = False) -> None:
    """The expected signer (:func:`add_identity_options`), ``--key`` where a managed-key bundle
    may be checked instead, and the optional GitHub Actions claims; read them back with
    :func:`policy_for`."""
    who = add_identity_options(
        parser,
        "signer identity ("
        + ("required unless --key; " if key else "")
        + "cosign's --certificate-* spellings work too)",
    )
    if key:
        who.add_argument(
            "--key", metavar="PEM", help="verify a managed-key bundle with this public key instead"
        )
    gh = parser.add_argument_group("GitHub Actions claims (optional, checked in the certificate)")
    gh.add_argument("--repository", metavar="OWNER/NAME", help="source repository")
    gh.add_argument("--ref", metavar="REF", help="git ref, e.g. refs/tags/v1.0")
    gh.add_argument("--sha", metavar="SHA", help="commit SHA")
    gh.add_argument("--trigger", metavar="EVENT", help="workflow trigger event, e.g. push")


def add_parser(sub: Any, name: str, help_text: str) -> None:
    """Register ``verify`` or ``verify-attestation`` (same options; the latter needs DSSE)."""
    attestation = name == "verify-attestation"
    what = "an in-toto attestation (DSSE) about FILE" if attestation else "FILE's signature"
    parser = sub.add_parser(
        name,
        help=help_text,
        description=f"Verify {what}\n"
        "against a Sigstore bundle (v0.1, v0.2 or v0.3), the trusted root and the\n"
        "expected signer identity.\n\n"
        "Exit status 0 when valid, 1 with one sentence on stderr when not, 2 for a\n"
        "wrong command line.",
        epilog=f"{TRUST_HELP}\n\n{ENVIRONMENT_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file",
        metavar="FILE",
        help="the artifact"
        + (" (a subject of the statement)" if attestation else "")
        + ", sha256:<64 hex digits>, or - for standard input",
    )
    parser.add_argument(
        "--bundle",
        metavar="B",
        help="the bundle (default: FILE.sigstore.json; needed for a digest or -)",
    )
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="json: print what was verified (identity, issuer, times, log entries"
        + (", the statement" if attestation else "")
        + ") as one JSON object on stdout; messages stay on stderr (default: text)",
    )
    add_policy_options(parser, key=True)
    if attestation:
        parser.add_argument(
            "--predicate-type", metavar="URI", help="require this in-toto predicateType"
        )
    trust = add_trust_options(parser)
    trust.add_argument(
        "--offline", action="store_true", help="no network at all (no TUF refresh, no --server)"
    )
    trust.add_argument(
        "--witness-policy", metavar="FILE",
        help="C2SP tlog-policy: the bundle's checkpoint must carry enough valid witness "
        "cosignatures (default with --server: the instance's witness_policy.txt TUF target, "
        "if it publishes one)",
    )
    parser.set_defaults(run=run, attestation=attestation, parser=parser)


def warn(message: str) -> None:
    """One warning line on stderr (the TUF refresh fell back to an older root)."""
    print(f"warning: {' '.join(message.split())}", file=sys.stderr)


def trusted_root_for(args: argparse.Namespace) -> Any:
    """The trusted root chosen by ``--trust-config`` / ``--server`` / default (+ TUF)."""
    from keyless.trust.sources import resolve_trust

    apply_trust_environment(args)
    return resolve_trust(
        trust_config=args.trust_config,
        server=args.server,
        offline=getattr(args, "offline", False),
        allow_insecure_http=args.allow_insecure_http,
        tuf_cache=args.tuf_cache,
        refresh_window=args.tuf_refresh_window,
        on_warning=warn,
    ).trusted_root


def check_usage(args: argparse.Namespace) -> None:
    """Reject contradictory or incomplete options before any work (exit status 2)."""
    error = args.parser.error
    if args.bundle is None and args.file.startswith("sha256:"):
        error("--bundle is required when verifying a digest")
    if args.bundle is None and args.file == STDIN:
        error("--bundle is required when FILE is - (standard input)")
    if args.bundle == STDIN:
        error("--bundle must be a file; only FILE can be - (standard input)")
    apply_trust_environment(args)
    if args.offline and args.server:
        if args.trust_source == "KEYLESS_SERVER":
            error("KEYLESS_SERVER is set but --offline needs no network; unset it or give "
                  "--trust-config")
        error("--server needs the network; drop --offline or use --trust-config")
    check_identity_options(args)


def policy_for(args: argparse.Namespace) -> Any:
    """The policy of :func:`add_policy_options`' options."""
    from keyless.verify import AllOf, GitHubWorkflow, Identity

    policies: list[Any] = [
        Identity(
            issuer=args.cert_oidc_issuer,
            identity=args.cert_identity,
            identity_regex=args.cert_identity_regexp,
            issuer_regex=getattr(args, "cert_oidc_issuer_regexp", None),
        )
    ]
    if any((args.repository, args.ref, args.sha, args.trigger)):
        policies.append(
            GitHubWorkflow(
                repository=args.repository, ref=args.ref, sha=args.sha, trigger=args.trigger
            )
        )
    return AllOf(policies)


def read_artifact(args: argparse.Namespace) -> Any:
    """FILE as an :class:`~keyless.verify.Artifact`: a path, a digest, or ``-`` (stdin)."""
    from keyless.verify import Artifact

    if args.file != STDIN:
        return Artifact.from_argument(args.file)
    import hashlib

    h = hashlib.sha256()
    while chunk := sys.stdin.buffer.read(1 << 20):
        h.update(chunk)
    return Artifact(h.digest(), "-")


def verify(args: argparse.Namespace) -> tuple[str, Any, Any]:
    """Verify; return the success message, the :class:`VerificationResult` and the artifact
    (raises keyless errors)."""
    from pathlib import Path

    from keyless.errors import ConfigError
    from keyless.verify import Verifier
    from keyless.verify.api import read_bundle

    bundle = read_bundle(Path(args.bundle or f"{args.file}.sigstore.json"))
    artifact = read_artifact(args)
    verifier = Verifier(trusted_root_for(args))
    key = None
    if args.key:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            key = load_pem_public_key(Path(args.key).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{args.key} is not a readable PEM public key") from exc
    policy = None if key is not None else policy_for(args)
    if not args.attestation:
        result = verifier.verify_artifact(artifact, bundle, policy, key=key)
        return f"OK: {args.file}{_check_witnesses(args, bundle)}", result, artifact
    result = verifier.verify_attestation(
        artifact, bundle, policy, key=key, predicate_type=getattr(args, "predicate_type", None)
    )
    _check_witnesses(args, bundle)
    predicate = (result.statement or {}).get("predicateType")
    return f"OK: {args.file} (attestation, predicate {predicate or '?'})", result, artifact


def _check_witnesses(args: argparse.Namespace, bundle: object) -> str:
    """Enforce ``--witness-policy`` (or the instance's TUF-delivered one); a note for the
    success message naming the witnesses. Without a policy nothing of it is imported."""
    from keyless.errors import ConfigError

    text: bytes | None = None
    if getattr(args, "witness_policy", None):
        try:
            with open(args.witness_policy, "rb") as f:
                text = f.read(1 << 20)
        except OSError as exc:
            raise ConfigError(f"cannot read --witness-policy {args.witness_policy!r}: "
                              f"{exc.strerror}") from exc
    elif getattr(args, "server", None):
        from keyless.trust.instances import cached_instance_target

        text = cached_instance_target(args.server, "witness_policy.txt")
    if text is None:
        return ""
    if not isinstance(bundle, bytes):  # read from a file by the caller
        raise ConfigError("a witness policy needs the bundle's bytes")
    from keyless.formats.witnesspolicy import WitnessPolicy
    from keyless.verify.witnesses import check_witness_policy

    policy = WitnessPolicy.parse(text)
    results = check_witness_policy(bundle, policy)
    names = sorted({name for r in results for name in r.cosigned_at})
    return f" (witnessed by {', '.join(names)})" if names else ""


def run(args: argparse.Namespace) -> int:
    """Entry point of the subcommand: 0 on success, 1 with one sentence on stderr."""
    from keyless.errors import Error

    check_usage(args)
    try:
        message, result, artifact = verify(args)
    except Error as exc:
        print(f"verification failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    if args.output == "json":
        from keyless._cli.report import verification_json

        sys.stdout.write(verification_json(args.file, artifact.sha256, result) + "\n")
        sys.stdout.flush()
    print(message, file=sys.stderr)
    return 0
