"""``keyless monitor``: follow an instance's transparency logs and report watched signers.

Reads the trusted root of ``--trust-config F`` or ``--server URL`` (as ``keyless verify``), follows
every log in it (Rekor v2 and CT from their tiles, Rekor v1 through its API), and prints one JSON
event per line (docs/monitoring.md).
Exit status with ``--once``: 0 all consistent (matches or not), 3 an inconsistency was reported
(its evidence is kept next to the state file), 1 another error; 2 a wrong command line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

EXIT_INCONSISTENT = 3


def add_parser(sub: Any, name: str, help_text: str) -> None:
    from keyless._cli.verify import add_trust_options

    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=help_text + ". Each event is one JSON line on stdout "
        "(match, inconsistency, checkpoint). With --once the exit status is 0 when every log is "
        "consistent, 3 after an inconsistency (evidence kept in STATE.evidence/), 1 on other "
        "errors.",
    )
    add_trust_options(parser)
    parser.add_argument("--state", type=Path, required=True, metavar="FILE",
                        help="SQLite file with the history of verified checkpoints "
                        "(created 0600)")
    parser.add_argument("--identity", action="append", default=[], metavar="ID",
                        help="a certificate identity (SAN) to watch for, exactly (repeatable)")
    parser.add_argument("--identity-regexp", action="append", default=[], metavar="RE",
                        help="a pattern the whole SAN must match (repeatable)")
    parser.add_argument("--issuer", metavar="URL",
                        help="the OIDC issuer the watched identities must have (alone: watch "
                        "every certificate of this issuer)")
    parser.add_argument("--key-fingerprint", action="append", default=[], metavar="sha256:HEX",
                        help="a signing key to watch for: SHA-256 of its DER public key "
                        "(repeatable)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from-start", action="store_true",
                       help="on the first run, read every entry from index 0 (default)")
    start.add_argument("--from-now", action="store_true",
                       help="on the first run, start at the log's current checkpoint")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true",
                      help="check every log once and exit (default: keep following)")
    mode.add_argument("--interval", type=float, default=300.0, metavar="S",
                      help="seconds between checks when following (default 300)")
    parser.add_argument("--webhook", metavar="URL",
                        help="also POST each event (JSON) here, with bounded retries")
    parser.add_argument("--witness-policy", metavar="FILE",
                        help="a C2SP tlog-policy file: every Rekor v2 checkpoint must meet its "
                        "quorum, and its witnesses' checkpoints are compared with the log's "
                        "(default with --server: the instance's witness_policy.txt TUF target)")
    parser.set_defaults(run=run, parser=parser)


def _targets(root: Any) -> list[Any]:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    from keyless.monitor.follow import LogTarget
    from keyless.trust.material import TrustMaterial

    targets = []
    for log in TrustMaterial(root).tlog_keys:
        kind = "tiles" if isinstance(log.key, ed25519.Ed25519PublicKey) else "rekor-v1"
        targets.append(LogTarget(log.instance.base_url, log, kind))
    for ct in TrustMaterial(root).ct_keys:
        if isinstance(ct.key, ec.EllipticCurvePublicKey):
            targets.append(LogTarget(ct.instance.base_url, ct, "static-ct"))
        else:
            print(f"warning: CT log {ct.instance.base_url}: only ECDSA static-ct-api logs are "
                  f"followed", file=sys.stderr)
    return targets


def _policy(args: argparse.Namespace) -> Any:
    """``--witness-policy FILE``; with ``--server`` and no flag, the instance's own policy (its
    TUF target ``witness_policy.txt``, as ``keyless verify`` uses), if it publishes one."""
    from keyless.errors import ConfigError
    from keyless.formats.witnesspolicy import WitnessPolicy

    text: bytes | None = None
    if args.witness_policy:
        try:
            with open(args.witness_policy, "rb") as f:
                text = f.read(1 << 20)
        except OSError as exc:
            raise ConfigError(f"cannot read --witness-policy {args.witness_policy!r}: "
                              f"{exc.strerror}") from exc
    elif args.server:
        from keyless.trust.instances import cached_instance_target

        text = cached_instance_target(args.server, "witness_policy.txt")
    return None if text is None else WitnessPolicy.parse(text)


def monitor(args: argparse.Namespace) -> int:
    from keyless._cli.verify import trusted_root_for
    from keyless.errors import ConfigError, Error
    from keyless.monitor.events import EventSink
    from keyless.monitor.follow import Follower
    from keyless.monitor.state import MonitorState
    from keyless.monitor.watch import Watch
    from keyless.trust.material import TrustMaterial

    root = trusted_root_for(args)
    watch = Watch(TrustMaterial(root), identities=args.identity, patterns=args.identity_regexp,
                  issuer=args.issuer, fingerprints=args.key_fingerprint)
    policy = _policy(args)
    targets = _targets(root)
    if not targets:
        raise ConfigError("the trusted root names no transparency log to follow")
    state = MonitorState(args.state)
    sink = EventSink(webhook=args.webhook)
    follower = Follower(state, watch, sink, policy=policy, from_now=args.from_now)
    broken: set[str] = set()
    try:
        while True:
            for target in targets:
                if target.url in broken:
                    continue  # reported once; the state keeps the last good checkpoint
                try:
                    if not follower.run(target):
                        broken.add(target.url)
                except Error as exc:
                    if args.once:
                        raise
                    print(f"warning: {target.url}: {' '.join(str(exc).split())}; trying again "
                          f"in {args.interval:g} s", file=sys.stderr)
            if args.once:
                return EXIT_INCONSISTENT if broken else 0
            time.sleep(args.interval)
    finally:
        sink.close()
        state.close()


def run(args: argparse.Namespace) -> int:
    """Entry point of the subcommand."""
    from keyless.errors import Error

    if args.webhook and not args.webhook.startswith(("https://", "http://")):
        args.parser.error("--webhook must be an http:// or https:// URL")
    if args.interval <= 0:
        args.parser.error("--interval must be a positive number of seconds")
    if not (args.identity or args.identity_regexp or args.issuer or args.key_fingerprint):
        args.parser.error("watch something: --identity, --identity-regexp, --issuer or "
                          "--key-fingerprint")
    try:
        return monitor(args)
    except Error as exc:
        print(f"monitor failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
