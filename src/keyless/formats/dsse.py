"""DSSE envelopes (secure-systems-lab/dsse ``envelope.md``, ``protocol.md``).

The signature of a DSSE envelope covers the Pre-Authentication Encoding (PAE) of the payload type
and payload, never the raw payload, so that a signature cannot be replayed under another type.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from keyless.errors import InvalidInput, field_name

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """``PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` (protocol.md)."""
    type_bytes = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    """One signature of an envelope; ``keyid`` is advisory and never trusted."""

    sig: bytes
    keyid: str = ""


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope with its payload decoded."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def pae(self) -> bytes:
        """The bytes every signature of this envelope is over."""
        return pae(self.payload_type, self.payload)

    def to_json(self) -> dict[str, Any]:
        """The envelope in its JSON form (base64 payload and signatures)."""
        sigs: list[dict[str, str]] = []
        for s in self.signatures:
            entry = {"sig": base64.b64encode(s.sig).decode()}
            if s.keyid:
                entry["keyid"] = s.keyid
            sigs.append(entry)
        return {
            "payload": base64.b64encode(self.payload).decode(),
            "payloadType": self.payload_type,
            "signatures": sigs,
        }

    @classmethod
    def from_json(cls, value: Any, what: str = "envelope") -> Envelope:
        """Parse a JSON envelope strictly, naming the offending field on error."""
        if isinstance(value, str | bytes):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError) as exc:
                raise InvalidInput(f"{what} is not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise InvalidInput(f"{what} must be a JSON object")
        payload_type = value.get("payloadType")
        if not isinstance(payload_type, str) or not payload_type:
            raise InvalidInput(f"{what}.payloadType must be a non-empty string")
        try:
            payload_type.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput(f"{what}.payloadType is not valid Unicode") from exc
        payload = _b64(value.get("payload"), f"{what}.payload")
        raw_sigs = value.get("signatures")
        if not isinstance(raw_sigs, list) or not raw_sigs:
            raise InvalidInput(f"{what}.signatures must be a non-empty list")
        sigs: list[Signature] = []
        for i, item in enumerate(raw_sigs):
            if not isinstance(item, dict):
                raise InvalidInput(f"{what}.signatures[{i}] must be an object")
            extra = sorted(set(item) - {"sig", "keyid"})
            if extra:
                raise InvalidInput(
                    f"{what}.signatures[{i}].{field_name(extra[0])} is not a known field"
                )
            keyid = item.get("keyid", "")
            if not isinstance(keyid, str):
                raise InvalidInput(f"{what}.signatures[{i}].keyid must be a string")
            sigs.append(Signature(_b64(item.get("sig"), f"{what}.signatures[{i}].sig"), keyid))
        return cls(payload_type, payload, tuple(sigs))


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what} is not valid base64") from exc
