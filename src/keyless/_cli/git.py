"""``keyless git setup``, ``keyless verify-commit`` and ``keyless verify-tag`` (docs/git.md).

::

    keyless git setup [--global] [--server URL | --trust-config F] [--identity ID --issuer URL]
    keyless verify-commit [REV] --cert-identity ID --cert-oidc-issuer URL [trust options]
    keyless verify-tag TAG --cert-identity ID --cert-oidc-issuer URL [trust options]

``setup`` writes the git configuration that makes ``git commit -S`` / ``git tag -s`` sign with
``keyless-git`` (and verification use it), and says what it wrote. ``verify-commit`` and
``verify-tag`` verify explicitly, with the policy options of ``keyless verify``; without
``--cert-*`` they use ``git config keyless.identity`` / ``keyless.issuer``, and without trust
options ``keyless.server`` / ``keyless.trustConfig`` (or ``KEYLESS_SERVER`` /
``KEYLESS_TRUST_CONFIG``). They never need the network with ``--trust-config`` or ``--offline``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from keyless._cli.verify import add_policy_options, add_trust_options, policy_for, warn


def add_parser(sub: Any, name: str, help_text: str) -> None:
    if name == "git":
        _add_git(sub, help_text)
    else:
        _add_verify(sub, name, help_text)


# --- keyless git setup ----------------------------------------------------------------------------


def _add_git(sub: Any, help_text: str) -> None:
    parser = sub.add_parser(
        "git",
        help=help_text,
        description="Sign git commits and tags keylessly: `keyless git setup` makes git use "
        "keyless-git as its x509 signing program.",
    )
    commands = parser.add_subparsers(dest="git_command", metavar="COMMAND", required=True)
    setup = commands.add_parser(
        "setup",
        help="write the git configuration for keyless signing",
        description="Set gpg.format=x509, gpg.x509.program=keyless-git, commit.gpgsign=true "
        "and tag.gpgsign=true (and the keyless.* settings given) in this repository, or in "
        "your global git configuration with --global.",
    )
    setup.add_argument(
        "--global", dest="global_", action="store_true", help="write ~/.gitconfig instead"
    )
    trust = setup.add_mutually_exclusive_group()
    trust.add_argument("--server", metavar="URL", help="set keyless.server (a keyless instance)")
    trust.add_argument(
        "--trust-config", metavar="FILE", help="set keyless.trustConfig (a ClientTrustConfig)"
    )
    setup.add_argument("--identity", metavar="ID", help="set keyless.identity (expected signer)")
    setup.add_argument("--issuer", metavar="URL", help="set keyless.issuer (its OIDC issuer)")
    setup.set_defaults(run=run_setup, parser=setup)


def program_path() -> str:
    """keyless-git next to this Python (the same installation), else on PATH."""
    beside = Path(sys.executable).parent / "keyless-git"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("keyless-git") or "keyless-git"


def setup_settings(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(key, value, why) for every setting ``setup`` writes."""
    program = program_path()
    out = [
        ("gpg.format", "x509", "git signs with an x509 (CMS) program"),
        ("gpg.x509.program", program, "that program is keyless-git"),
        ("commit.gpgsign", "true", "every commit is signed"),
        ("tag.gpgsign", "true", "every annotated tag is signed"),
    ]
    if args.server:
        out.append(("keyless.server", args.server, "sign and verify with this keyless instance"))
    if args.trust_config:
        path = str(Path(args.trust_config).resolve())
        out.append(("keyless.trustConfig", path, "sign and verify with this trust config"))
    if args.identity:
        out.append(("keyless.identity", args.identity, "git verify-commit expects this signer"))
    if args.issuer:
        out.append(("keyless.issuer", args.issuer, "... from this OIDC issuer"))
    return out


def run_setup(args: argparse.Namespace) -> int:
    if bool(args.identity) != bool(args.issuer):
        args.parser.error("give --identity and --issuer together")
    scope = ["--global"] if args.global_ else ["--local"]
    where = "your global git configuration" if args.global_ else "this repository's git config"
    written = []
    for key, value, why in setup_settings(args):
        done = subprocess.run(
            ["git", "config", *scope, key, value], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            reason = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
            print(f"keyless git setup: git config {key} failed: {reason}", file=sys.stderr)
            return 1
        written.append(f"  {key} = {value}    # {why}")
    print(f"wrote to {where}:", *written, sep="\n")
    notes = [
        "git commit -S / git tag -s now sign with a short-lived certificate for your OIDC "
        "identity (SIGSTORE_ID_TOKEN, CI credentials, or a sign-in in the browser); the "
        "certificate is reused for the commits of the next minutes.",
    ]
    if not args.identity:
        notes.append(
            "git verify-commit reports a valid signature as untrusted until you set the "
            "expected signer: git config keyless.identity ID; git config keyless.issuer URL."
        )
    notes.append("undo with: git config " + scope[0] + " --unset KEY (for each key above)")
    print(*notes, sep="\n")
    return 0


# --- keyless verify-commit / verify-tag -----------------------------------------------------------


def _add_verify(sub: Any, name: str, help_text: str) -> None:
    kind = "commit" if name == "verify-commit" else "tag"
    parser = sub.add_parser(
        name,
        help=help_text,
        description=f"Verify the keyless signature of a git {kind} offline: the CMS signature, "
        "its certificate chain at the logged signing time, the embedded transparency log "
        "proof and checkpoint, and the expected signer. Exit status 0 when valid, 1 when not.",
    )
    if kind == "commit":
        parser.add_argument("rev", metavar="REV", nargs="?", default="HEAD", help="default HEAD")
    else:
        parser.add_argument("rev", metavar="TAG", help="an annotated tag")
    add_policy_options(parser)
    trust = add_trust_options(parser)
    trust.add_argument("--offline", action="store_true", help="no network at all")
    parser.set_defaults(run=run_verify, kind=kind, parser=parser)


def _apply_git_defaults(args: argparse.Namespace) -> None:
    """Fill what the command line leaves open from git config / the environment."""
    from keyless._cli.verify import check_identity_options
    from keyless.git.config import settings

    git = settings()
    identity = args.cert_identity or args.cert_identity_regexp
    issuer = args.cert_oidc_issuer or args.cert_oidc_issuer_regexp
    if not identity and not issuer:
        args.cert_identity, args.cert_oidc_issuer = git.identity, git.issuer
    if not args.trust_config and not args.server:
        args.trust_config, args.server = git.trust_config, git.server
    identity = args.cert_identity or args.cert_identity_regexp
    issuer = args.cert_oidc_issuer or args.cert_oidc_issuer_regexp
    if not identity or not issuer:
        args.parser.error(
            "give --cert-identity (or --cert-identity-regexp) and --cert-oidc-issuer (or "
            "--cert-oidc-issuer-regexp), or set git config keyless.identity and keyless.issuer"
        )
    check_identity_options(args)
    if args.offline and args.server:
        args.parser.error("--server needs the network; drop --offline or use --trust-config")


def _verifier(args: argparse.Namespace) -> Any:
    from keyless.trust.sources import resolve_trust
    from keyless.verify import Verifier

    return Verifier(
        resolve_trust(
            trust_config=args.trust_config,
            server=args.server,
            offline=args.offline,
            allow_insecure_http=args.allow_insecure_http,
            tuf_cache=args.tuf_cache,
            refresh_window=args.tuf_refresh_window,
            on_warning=warn,
        ).trusted_root
    )


def run_verify(args: argparse.Namespace) -> int:
    from keyless.errors import Error
    from keyless.git.objects import read_object
    from keyless.git.verifying import verify_signature

    try:
        _apply_git_defaults(args)
        obj = read_object(args.rev, args.kind)
        result = verify_signature(_verifier(args), obj.signature, obj.payload, policy_for(args))
        if not result.identity_ok:
            from keyless.verify.errors import IdentityMismatchError

            raise IdentityMismatchError(result.identity_problem or "unexpected signer")
    except Error as exc:
        print(f"verification failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(
        f"OK: {args.kind} {obj.oid} signed by {result.identity} ({result.issuer}) at "
        f"{result.signed_at:%Y-%m-%d %H:%M:%S} UTC, transparency log index {result.log_index}",
        file=sys.stderr,
    )
    return 0
