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
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from keyless.formats.bundle import TransparencyLogEntry
from keyless.merkle import leaf_hash, verify_inclusion
from keyless.trust.material import LogKey, TrustMaterial
from keyless.verify.errors import (
    CheckpointError,
    InclusionPromiseError,
    MissingInclusionProofError,
    UntrustedLogError,
)

_EM_DASH = "\u2014 "


@dataclass(frozen=True)
class NoteLine:
    """One signature line of a signed note: signer name, 4-byte key hint, signature."""

    name: str
    key_hint: bytes
    signature: bytes


@dataclass(frozen=True)
class ParsedCheckpoint:
    """A checkpoint body (C2SP tlog-checkpoint) with its signature lines."""

    text: bytes
    origin: str
    size: int
    root_hash: bytes
    signatures: tuple[NoteLine, ...]


def parse_checkpoint(envelope: str) -> ParsedCheckpoint:
    """Parse a signed note strictly (C2SP signed-note, tlog-checkpoint)."""
    if "\n\n" not in envelope:
        raise CheckpointError("checkpoint has no signature block")
    body, _, sig_block = envelope.partition("\n\n")
    text = body + "\n"
    lines = body.split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint must have origin, size and root hash lines")
    origin, size_line, root_line = lines[0], lines[1], lines[2]
    if not origin or origin != origin.strip():
        raise CheckpointError("checkpoint origin line is empty or malformed")
    if (
        not size_line.isdigit()
        or not size_line.isascii()
        or (len(size_line) > 1 and size_line[0] == "0")
    ):
        raise CheckpointError("checkpoint size line is not a decimal number")
    try:
        root_hash = base64.b64decode(root_line, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError("checkpoint root hash line is not base64") from exc
    if len(root_hash) != 32:
        raise CheckpointError("checkpoint root hash is not 32 bytes")
    if not sig_block.endswith("\n"):
        raise CheckpointError("checkpoint signature block must end with a newline")
    signatures: list[NoteLine] = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(_EM_DASH):
            raise CheckpointError("checkpoint signature line does not start with an em dash")
        name, _, encoded = line[len(_EM_DASH) :].rpartition(" ")
        if not name or " " in name:
            raise CheckpointError("checkpoint signature line has a malformed signer name")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CheckpointError("checkpoint signature is not base64") from exc
        if len(raw) < 5:
            raise CheckpointError("checkpoint signature is too short")
        signatures.append(NoteLine(name, raw[:4], raw[4:]))
    if not signatures:
        raise CheckpointError("checkpoint carries no signature")
    return ParsedCheckpoint(text.encode(), origin, int(size_line), root_hash, tuple(signatures))


def _raw_ed25519(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _spki(key: Any) -> bytes:
    spki: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return spki


def _verify_raw(key: Any, signature: bytes, data: bytes) -> None:
    """Verify with a log key; raises InvalidSignature."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, data)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        digest = {"secp384r1": hashes.SHA384(), "secp521r1": hashes.SHA512()}.get(
            key.curve.name, hashes.SHA256()
        )
        key.verify(signature, data, ec.ECDSA(digest))
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise InvalidSignature


def verify_checkpoint(cp: ParsedCheckpoint, log: LogKey) -> NoteLine:
    """Find and verify the log's own signature line; other lines are ignored (witnesses)."""
    key = log.key
    if isinstance(key, ed25519.Ed25519PublicKey):
        key_id = hashlib.sha256(cp.origin.encode() + b"\n\x01" + _raw_ed25519(key)).digest()
        if key_id != log.instance.log_id:
            raise CheckpointError(
                f"checkpoint origin {cp.origin!r} does not match the trusted log's ID"
            )
        name = cp.origin
    else:
        key_id = hashlib.sha256(_spki(key)).digest()
        name = cp.origin.split(" - ", 1)[0]
    for line in cp.signatures:
        if line.key_hint != key_id[:4] or line.name != name:
            continue
        try:
            _verify_raw(key, line.signature, cp.text)
        except InvalidSignature:
            continue
        return line
    raise CheckpointError(f"checkpoint has no valid signature by the log {name!r}")


def set_payload(entry: TransparencyLogEntry) -> bytes:
    """JCS of ``{body, integratedTime, logID, logIndex}`` (protocols.md §3.2); the values are
    ASCII strings and integers, for which sorted compact JSON is exactly RFC 8785."""
    return json.dumps(
        {
            "body": base64.b64encode(entry.canonicalized_body).decode(),
            "integratedTime": entry.integrated_time,
            "logID": entry.log_id.hex(),
            "logIndex": entry.log_index,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


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
    verify_inclusion(
        leaf_hash(entry.canonicalized_body),
        proof.log_index,
        proof.tree_size,
        proof.hashes,
        proof.root_hash,
    )
    cp = parse_checkpoint(proof.checkpoint)
    if cp.size != proof.tree_size or cp.root_hash != proof.root_hash:
        raise CheckpointError("the checkpoint's tree does not match the inclusion proof")
    errors: list[CheckpointError] = []
    for log in logs:
        try:
            verify_checkpoint(cp, log)
            break
        except CheckpointError as exc:
            errors.append(exc)
    else:
        raise errors[0]
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
