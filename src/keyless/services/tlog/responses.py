"""Response bodies of the Rekor v1 and v2 APIs, built exactly as clients parse them.

* v2: ``dev.sigstore.rekor.v1.TransparencyLogEntry`` as protobuf-JSON with ``EmitUnpopulated``
  (protocols.md §4): uint64 as decimal strings, bytes as base64, ``hashes`` present even when
  empty, ``"integratedTime":"0"`` and ``"inclusionPromise":null`` — sigstore-python parses the
  POST answer with a strict model and fails *while signing* otherwise (interop.md §5 gotcha 2).
* v1: ``LogEntry`` keyed by entryID = ``%016x`` treeID + 64-hex UUID (protocols.md §3.2), with
  the signed entry timestamp over the RFC 8785 form of exactly
  ``{body, integratedTime, logID, logIndex}`` and the inclusion proof *with* checkpoint
  (interop.md §5 gotcha 5).
"""

from __future__ import annotations

import binascii
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

from keyless.errors import InvalidInput, NotFound
from keyless.keys import KeySigner
from keyless.services.tlog.kinds.common import jcs


@dataclass(frozen=True)
class Proof:
    """An inclusion proof of ``index`` in the tree of ``tree_size`` under ``checkpoint``."""

    index: int
    tree_size: int
    root_hash: bytes
    hashes: Sequence[bytes]
    checkpoint: bytes


#: a JSON string literal exactly as ``json.dumps`` writes it (ASCII, the same escapes)
_string = encode_basestring_ascii


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def v2_entry(
    *, index: int, log_id: bytes, kind: str, version: str, body: bytes, proof: Proof
) -> dict[str, Any]:
    """A fully populated v2 ``TransparencyLogEntry`` (protobuf-JSON, EmitUnpopulated)."""
    return {
        "logIndex": str(index),
        "logId": {"keyId": _b64(log_id)},
        "kindVersion": {"kind": kind, "version": version},
        "integratedTime": "0",
        "inclusionPromise": None,
        "inclusionProof": {
            "logIndex": str(proof.index),
            "rootHash": _b64(proof.root_hash),
            "treeSize": str(proof.tree_size),
            "hashes": [_b64(h) for h in proof.hashes],
            "checkpoint": {"envelope": proof.checkpoint.decode()},
        },
        "canonicalizedBody": _b64(body),
    }


#: :func:`v2_entry` as compact JSON, keys in its order (see :func:`v2_entry_json`).
_V2_ENTRY_JSON = (
    b'{"logIndex":"%d","logId":{"keyId":"%s"},"kindVersion":{"kind":%s,"version":%s},'
    b'"integratedTime":"0","inclusionPromise":null,"inclusionProof":{"logIndex":"%d",'
    b'"rootHash":"%s","treeSize":"%d","hashes":[%s],"checkpoint":{"envelope":%s}},'
    b'"canonicalizedBody":"%s"}'
)
_b2a = binascii.b2a_base64


@functools.lru_cache(maxsize=8)
def _note_json(note: bytes) -> bytes:
    """A checkpoint note as a JSON string literal; kept, as one batch's entries share a note."""
    return _string(note.decode()).encode()


def v2_entry_json(
    *, index: int, log_id: bytes, kind: str, version: str, body: bytes, proof: Proof
) -> bytes:
    """:func:`v2_entry` as compact JSON, byte for byte ``json.dumps(v2_entry(…),
    separators=(",", ":"))``, written out directly: the write path answers every entry with it,
    and the generic encoder cost a third of a JSON answer's CPU."""
    hashes = b'","'.join([_b2a(h, newline=False) for h in proof.hashes])
    return _V2_ENTRY_JSON % (
        index, _b2a(log_id, newline=False), _string(kind).encode(), _string(version).encode(),
        proof.index, _b2a(proof.root_hash, newline=False), proof.tree_size,
        b'"' + hashes + b'"' if hashes else b"", _note_json(proof.checkpoint),
        _b2a(body, newline=False),
    )


def entry_uuid(leaf_hash: bytes) -> str:
    """Rekor's entry UUID: hex of the RFC 6962 leaf hash of the canonical body."""
    return leaf_hash.hex()


def entry_id(tree_id: int, leaf_hash: bytes) -> str:
    """Rekor's entryID: 16-hex tree ID followed by the 64-hex UUID (rekor ``pkg/sharding``)."""
    return f"{tree_id:016x}{leaf_hash.hex()}"


_UUID_RE = re.compile(r"^(?:[0-9a-f]{16})?[0-9a-f]{64}$")


def parse_entry_id(value: str, tree_id: int) -> bytes:
    """The leaf hash named by a 64-hex UUID or an 80-hex entryID of *this* tree."""
    value = value.lower()
    if not _UUID_RE.match(value):
        raise InvalidInput("entry UUID must be 64 hex digits, or 80 with the tree ID prefix")
    if len(value) == 80:
        if int(value[:16], 16) != tree_id:
            raise NotFound(f"entry {value} belongs to tree {int(value[:16], 16)}, not {tree_id}")
        value = value[16:]
    return bytes.fromhex(value)


def set_payload(*, body: bytes, integrated_time: int, log_id_hex: str, index: int) -> bytes:
    """The bytes the SET signs: JCS of ``{body, integratedTime, logID, logIndex}`` (§3.2)."""
    return jcs(
        {
            "body": _b64(body),
            "integratedTime": integrated_time,
            "logID": log_id_hex,
            "logIndex": index,
        }
    )


def v1_entry(
    *,
    tree_id: int,
    leaf_hash: bytes,
    body: bytes,
    integrated_time: int,
    log_id_hex: str,
    index: int,
    proof: Proof,
    signer: KeySigner,
) -> dict[str, Any]:
    """A Rekor v1 ``LogEntry`` map ``{entryID: {...}}`` with SET and inclusion proof."""
    set_signature = signer.sign(
        set_payload(
            body=body, integrated_time=integrated_time, log_id_hex=log_id_hex, index=index
        )
    )
    return {
        entry_id(tree_id, leaf_hash): {
            "body": _b64(body),
            "integratedTime": integrated_time,
            "logID": log_id_hex,
            "logIndex": index,
            "verification": {
                "signedEntryTimestamp": _b64(set_signature),
                "inclusionProof": {
                    "logIndex": proof.index,
                    "rootHash": proof.root_hash.hex(),
                    "treeSize": proof.tree_size,
                    "hashes": [h.hex() for h in proof.hashes],
                    "checkpoint": proof.checkpoint.decode(),
                },
            },
        }
    }
