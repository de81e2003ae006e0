"""Transparency-log proofs of one bundle entry (protocols.md §3.2, §4, §5; §9 step 5).

Offline verification needs: the entry's log ID naming a trusted log whose key is valid at the
signing time; an RFC 6962 inclusion proof of the canonicalized body; a checkpoint (C2SP signed
note) signed by that log whose size and root equal the proof's; and, for Rekor v1, the signed
entry timestamp (SET) when the bundle has one. Checkpoint signature lines are matched by the
log's key hint, never by position (witness cosignatures may come first, interop.md §5 item 8):

* Ed25519 (Rekor v2, C2SP): key ID = SHA-256(origin ‖ 0x0A ‖ 0x01 ‖ raw key); the signer name
  must be the origin and the full key ID must equal the trusted ``logId`` (the Rekor v2 log-ID
  convention, interop.md §5 item 9).
* ECDSA (Rekor v1): key hint = SHA-256(SPKI)[:4] = ``logId[:4]``; signature over the note text
  (SHA-256); the signer name is the origin's host part (``<host> - <treeID>``).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from keyless.errors import ConfigError, InvalidInput
from keyless.formats.bundle import TransparencyLogEntry
from keyless.formats.checkpoint import Checkpoint
from keyless.formats.note import CheckpointError, SignedNote
from keyless.formats.note_keys import NoteVerifier, verify_note
from keyless.keys import hash_for_curve
from keyless.merkle import leaf_hash, verify_inclusion
from keyless.trust.material import LogKey, TrustMaterial
from keyless.verify.errors import (
    InclusionPromiseError,
    LogEntryMismatchError,
    MissingInclusionProofError,
    UntrustedLogError,
)

__all__ = [
    "is_rekor_v2",
    "set_payload",
    "trusted_logs",
    "verify_checkpoint",
    "verify_entry",
]


def _verify_raw(key: Any, signature: bytes, data: bytes) -> None:
    """Verify a SET with a log key; raises InvalidSignature."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, data)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(hash_for_curve(key.curve)))
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise InvalidSignature


def _note_name(origin: str, key: Any) -> str:
    """The signer name of the log's own checkpoint signature (see the module docstring)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return origin
    return origin.split(" - ", 1)[0]


#: Note verifiers by (trusted key DER, signer name): computing a key ID costs a key encoding and
#: a hash, and a warm verifier sees the same few logs and origins again and again.
_NOTE_VERIFIERS: dict[tuple[bytes, str], NoteVerifier] = {}
_NOTE_VERIFIERS_MAX = 256


def _note_verifier(log: LogKey, name: str) -> NoteVerifier:
    """The log's note verifier under ``name``: cached, or made (cached once a note verifies)."""
    verifier = _NOTE_VERIFIERS.get((log.instance.public_key, name))
    if verifier is None:
        try:
            verifier = NoteVerifier(name, log.key)
        except (ConfigError, InvalidInput) as exc:
            problem = f"checkpoint origin {name[:80]!r} is not a valid key name"
            raise CheckpointError(problem) from exc
    return verifier


def _remember(log: LogKey, verifier: NoteVerifier) -> None:
    """Cache a verifier whose note verified: only names a trusted log really signs."""
    if len(_NOTE_VERIFIERS) >= _NOTE_VERIFIERS_MAX:
        _NOTE_VERIFIERS.clear()
    _NOTE_VERIFIERS[(log.instance.public_key, verifier.name)] = verifier


def verify_checkpoint(envelope: str, log: LogKey) -> Checkpoint:
    """Parse the signed note and verify the log's own signature line; lines of other keys
    (witness cosignatures, unknown keys under the same origin) are ignored wherever they are."""
    note = SignedNote.parse(envelope)
    cp = Checkpoint.from_text(note.text)
    key = log.key
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise CheckpointError("only Ed25519 and ECDSA transparency logs sign checkpoints")
    verifier = _note_verifier(log, _note_name(cp.origin, key))
    if isinstance(key, ed25519.Ed25519PublicKey) and verifier.key_id != log.instance.log_id:
        raise CheckpointError(
            f"checkpoint origin {cp.origin[:80]!r} does not match the trusted log's ID"
        )
    verify_note(note, [verifier])
    _remember(log, verifier)
    return cp


def set_payload(entry: TransparencyLogEntry) -> bytes:
    """JCS of ``{body, integratedTime, logID, logIndex}`` (protocols.md §3.2).

    The values are a base64 string, a hex string and two integers, and the keys are already in
    sorted order, so this compact form is exactly RFC 8785's (tests compare it with json.dumps).
    """
    body = base64.b64encode(entry.canonicalized_body).decode("ascii")
    return (
        f'{{"body":"{body}","integratedTime":{int(entry.integrated_time)},'
        f'"logID":"{entry.log_id.hex()}","logIndex":{int(entry.log_index)}}}'
    ).encode("ascii")


def is_rekor_v2(entry: TransparencyLogEntry) -> bool:
    """Rekor v2 kinds (hashedrekord/dsse 0.0.2) have no integrated time and no SET."""
    return entry.kind in ("hashedrekord", "dsse") and entry.version == "0.0.2"


def trusted_logs(
    trust: TrustMaterial, entry: TransparencyLogEntry, times: Sequence[datetime]
) -> list[LogKey]:
    """The trusted logs with the entry's log ID whose key is valid at every given time."""
    candidates = trust.tlogs_for(entry.log_id)
    if not candidates:
        raise UntrustedLogError(
            f"log ID {base64.b64encode(entry.log_id).decode()} names no trusted transparency log"
        )
    valid = [k for k in candidates if all(k.valid_for.contains(t) for t in times)]
    if not valid:
        raise UntrustedLogError("the transparency log's key was not valid at the signing time")
    return valid


def verify_entry(entry: TransparencyLogEntry, logs: Sequence[LogKey], *, require_set: bool) -> None:
    """Inclusion proof + checkpoint, and the SET when present or required (§9 step 5)."""
    proof = entry.inclusion_proof
    if proof is None or proof.checkpoint is None:
        raise MissingInclusionProofError(
            "the transparency log entry has no inclusion proof with a checkpoint"
        )
    if is_rekor_v2(entry) and entry.log_index != proof.log_index:
        # Rekor v2 has no shards: the entry's index is the proof's (nothing else binds it).
        raise LogEntryMismatchError("the entry's log index differs from its inclusion proof's")
    verify_inclusion(
        leaf_hash(entry.canonicalized_body),
        proof.log_index,
        proof.tree_size,
        proof.hashes,
        proof.root_hash,
    )
    errors: list[CheckpointError] = []
    for log in logs:
        try:
            cp = verify_checkpoint(proof.checkpoint, log)
            break
        except CheckpointError as exc:
            errors.append(exc)
    else:
        raise errors[0]
    if cp.size != proof.tree_size or cp.root_hash != proof.root_hash:
        raise CheckpointError("the checkpoint's tree does not match the inclusion proof")
    if entry.inclusion_promise is None:
        if require_set:
            raise InclusionPromiseError("the v0.1 bundle's log entry has no inclusion promise")
        return
    payload = set_payload(entry)
    for log in logs:
        try:
            _verify_raw(log.key, entry.inclusion_promise, payload)
            return
        except InvalidSignature:
            continue
    raise InclusionPromiseError("the signed entry timestamp does not verify with the log key")
