"""Witness policies (C2SP tlog-policy): which logs and witnesses a verifier trusts, and the quorum.

A policy is line-based text; blank lines and lines starting with ``#`` are ignored, fields are
separated by spaces or tabs::

    log <vkey> [<url>]                    # a trusted log; its key name is the checkpoint origin
    witness <name> <vkey> [<url>]         # a cosigner (0x04 or 0x06 key); url: submission prefix
    group <name> <all|any|K> <member>…    # K of the members (defined earlier), 1 <= K <= n
    quorum <name|none>                    # exactly once: the witness or group that must agree

A checkpoint satisfies the policy when a listed log signed it (origin = that log's key name),
every signature line of a known key (name and key ID) verifies, and the quorum is satisfied by
the witnesses whose cosignatures verify. Names share one namespace and ``none`` is reserved; a
witness or group is a member of at most one group and at most once; two entries with the same
public key are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from keyless.errors import InvalidInput, VerificationError
from keyless.formats.checkpoint import Checkpoint
from keyless.formats.cosignature import cosignature_timestamp, verifier_for_vkey
from keyless.formats.note import NoteSignature, SignedNote
from keyless.formats.note_keys import SignatureVerifier, verify_note
from keyless.formats.vkey import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    SIG_MLDSA44_COSIGNATURE,
    VerifierKey,
    VkeyError,
)

__all__ = [
    "MAX_POLICY_SIZE",
    "PolicyError",
    "PolicyGroup",
    "PolicyWitness",
    "WitnessPolicy",
    "WitnessPolicyError",
    "Witnessed",
]

MAX_POLICY_SIZE = 64 * 1024
_FIELD_RE = re.compile(r"[ \t]+")
_ALLOWED = re.compile(r"[^\x09\x0a\x20-\x7e\x80-\U0010ffff]")
_K_RE = re.compile(r"[1-9][0-9]{0,3}\Z")


class PolicyError(InvalidInput):
    """The policy text is malformed; the message names the line and the rule."""


class WitnessPolicyError(VerificationError):
    """A checkpoint does not satisfy the witness policy."""


@dataclass(frozen=True)
class PolicyWitness:
    name: str
    vkey: VerifierKey
    url: str | None = None


@dataclass(frozen=True)
class PolicyGroup:
    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Witnessed:
    """What a satisfied policy found: the log's origin and each valid cosigner's timestamp."""

    checkpoint: Checkpoint
    log: str
    cosigned_at: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class WitnessPolicy:
    logs: tuple[tuple[VerifierKey, str | None], ...]
    witnesses: dict[str, PolicyWitness]
    groups: dict[str, PolicyGroup]
    quorum: str | None  # None: "quorum none"

    # parsing ----------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str | bytes) -> WitnessPolicy:
        if isinstance(text, bytes):
            if len(text) > MAX_POLICY_SIZE:
                raise PolicyError(f"witness policy is larger than {MAX_POLICY_SIZE} bytes")
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PolicyError("witness policy is not UTF-8") from exc
        if len(text) > MAX_POLICY_SIZE:
            raise PolicyError(f"witness policy is larger than {MAX_POLICY_SIZE} bytes")
        bad = _ALLOWED.search(text)
        if bad is not None:
            raise PolicyError(f"witness policy contains character {ord(bad.group()):#04x}")
        logs: list[tuple[VerifierKey, str | None]] = []
        witnesses: dict[str, PolicyWitness] = {}
        groups: dict[str, PolicyGroup] = {}
        quorum: str | None = None
        quorum_seen = False
        keys: set[tuple[int, bytes]] = set()
        in_group: set[str] = set()
        for number, raw in enumerate(text.split("\n"), start=1):
            line = raw.strip(" \t")
            if not line or line.startswith("#"):
                continue
            where = f"witness policy line {number}"
            word, *args = _FIELD_RE.split(line)

            def vkey(value: str, where: str = where) -> VerifierKey:
                try:
                    parsed = VerifierKey.parse(value)
                except VkeyError as exc:
                    raise PolicyError(f"{where}: {exc}") from exc
                ident = (parsed.sig_type, parsed.public_key)
                if ident in keys:
                    raise PolicyError(f"{where}: this public key is already listed")
                keys.add(ident)
                return parsed

            def new_name(name: str, where: str = where) -> str:
                if name == "none" or name in witnesses or name in groups:
                    raise PolicyError(f"{where}: name {name!r} is reserved or already defined")
                return name

            if word == "log":
                if len(args) not in (1, 2):
                    raise PolicyError(f"{where}: expected 'log <vkey> [<url>]'")
                key = vkey(args[0])
                if key.sig_type != SIG_ED25519:
                    raise PolicyError(f"{where}: only Ed25519 (0x01) log keys are supported")
                logs.append((key, args[1] if len(args) == 2 else None))
            elif word == "witness":
                if len(args) not in (2, 3):
                    raise PolicyError(f"{where}: expected 'witness <name> <vkey> [<url>]'")
                name = new_name(args[0])
                key = vkey(args[1])
                if key.sig_type not in (SIG_COSIGNATURE_V1, SIG_MLDSA44_COSIGNATURE):
                    raise PolicyError(
                        f"{where}: a witness key must be a cosignature key (type 0x04 or 0x06)"
                    )
                witnesses[name] = PolicyWitness(name, key, args[2] if len(args) == 3 else None)
            elif word == "group":
                if len(args) < 3:
                    raise PolicyError(f"{where}: expected 'group <name> <all|any|K> <member>…'")
                name = new_name(args[0])
                members = tuple(args[2:])
                for member in members:
                    if member not in witnesses and member not in groups:
                        raise PolicyError(f"{where}: member {member!r} is not defined above")
                    if member in in_group:
                        raise PolicyError(f"{where}: {member!r} is already a member of a group")
                    in_group.add(member)
                k = args[1]
                if k == "all":
                    threshold = len(members)
                elif k == "any":
                    threshold = 1
                elif _K_RE.match(k) and int(k) <= len(members):
                    threshold = int(k)
                else:
                    raise PolicyError(
                        f"{where}: threshold must be all, any or 1..{len(members)}, got {k[:20]!r}"
                    )
                groups[name] = PolicyGroup(name, threshold, members)
            elif word == "quorum":
                if quorum_seen:
                    raise PolicyError(f"{where}: a policy has exactly one quorum line")
                if len(args) != 1:
                    raise PolicyError(f"{where}: expected 'quorum <name|none>'")
                quorum_seen = True
                if args[0] != "none":
                    if args[0] not in witnesses and args[0] not in groups:
                        raise PolicyError(f"{where}: quorum {args[0]!r} is not defined above")
                    quorum = args[0]
            else:
                raise PolicyError(f"{where}: unknown keyword {word[:20]!r}")
        if not quorum_seen:
            raise PolicyError("witness policy has no quorum line")
        if not logs:
            raise PolicyError("witness policy lists no log")
        return cls(tuple(logs), witnesses, groups, quorum)

    def render(self) -> str:
        """The policy as text (what an instance publishes)."""
        lines = [" ".join(filter(None, ["log", str(k), url])) for k, url in self.logs]
        lines += [
            " ".join(filter(None, ["witness", w.name, str(w.vkey), w.url]))
            for w in self.witnesses.values()
        ]
        for g in self.groups.values():
            k = "all" if g.threshold == len(g.members) else str(g.threshold)
            lines.append(" ".join(["group", g.name, k, *g.members]))
        lines.append(f"quorum {self.quorum or 'none'}")
        return "\n".join(lines) + "\n"

    # evaluation -------------------------------------------------------------------------------
    def satisfied_by(self, cosigners: set[str]) -> bool:
        """Whether witnesses ``cosigners`` (by name) satisfy the quorum."""
        if self.quorum is None:
            return True

        def ok(name: str) -> bool:
            if name in self.witnesses:
                return name in cosigners
            group = self.groups[name]
            return sum(ok(m) for m in group.members) >= group.threshold

        return ok(self.quorum)

    def verify(self, envelope: bytes | str) -> Witnessed:
        """Verify a signed checkpoint against the policy; raises :class:`WitnessPolicyError`."""
        note = SignedNote.parse(envelope)
        cp = Checkpoint.from_text(note.text)
        log_verifiers = [verifier_for_vkey(k) for k, _url in self.logs]
        # a cosignature line carries the vkey's key name and key ID; the policy name is local
        witness_verifiers: dict[tuple[str, bytes], tuple[str, SignatureVerifier]] = {
            (w.vkey.name, w.vkey.key_id): (w.name, verifier_for_vkey(w.vkey))
            for w in self.witnesses.values()
        }
        # signature lines of a known witness name and key ID must verify
        try:
            logs = verify_note(note, log_verifiers)
        except VerificationError as exc:
            raise WitnessPolicyError(
                f"checkpoint is not signed by a log of the policy: {exc}"
            ) from exc
        log = logs[0].name
        if cp.origin != log:
            raise WitnessPolicyError(
                f"checkpoint origin {cp.origin!r} is not the name of the log that signed it"
            )
        cosigned: dict[str, int] = {}
        for sig in note.signatures:
            known = witness_verifiers.get((sig.name, sig.key_hint))
            if known is None:
                continue
            policy_name, verifier = known
            if not verifier.check(note.text, sig.signature):
                raise WitnessPolicyError(f"cosignature of witness {sig.name!r} does not verify")
            cosigned[policy_name] = _timestamp(sig)
        if not self.satisfied_by(set(cosigned)):
            have = ", ".join(sorted(cosigned)) or "none"
            raise WitnessPolicyError(
                f"checkpoint of {cp.origin} (size {cp.size}) does not meet the witness quorum "
                f"{self.quorum!r}: valid cosignatures from {have}"
            )
        return Witnessed(cp, log, cosigned)


def _timestamp(sig: NoteSignature) -> int:
    return cosignature_timestamp(sig)
