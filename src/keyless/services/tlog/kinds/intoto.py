"""The ``intoto`` 0.0.2 kind (Rekor v1; what @sigstore/cli ``attest`` always sends).

rekor ``pkg/types/intoto/v0.0.2`` (interop.md §5 gotchas 5, 14): the envelope travels with its
payload and signatures *double* base64-encoded (``strfmt.Base64`` of the base64 text) and each
signature carries its ``publicKey`` (base64 PEM). The log verifies every signature over the PAE,
computes ``payloadHash`` = SHA-256(payload) and ``hash`` = SHA-256(JCS of the envelope with single
base64 and PEM keys, ``keyid`` only when non-empty) — the scheme sigstore-js reproduces when it
verifies (``sign/src/witness/tlog/entry.ts calculateDSSEHash``) — and refuses client-supplied
hashes that differ. The canonical body keeps the envelope as proposed.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from keyless.errors import InvalidInput
from keyless.formats.dsse import pae
from keyless.services.tlog.kinds import common
from keyless.services.tlog.kinds.common import EntrySignatureError, Proposed

KIND = "intoto"
MAX_SIGNATURES = 16


def _inner_b64(outer: bytes, what: str) -> tuple[str, bytes]:
    """The inner base64 text of a double-encoded field and the bytes it encodes."""
    try:
        text = outer.decode("ascii")
        return text, base64.b64decode(text, validate=True)
    except (UnicodeDecodeError, binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what} must be base64 of base64 (Rekor intoto 0.0.2)") from exc


def _check_hash(content: dict[str, Any], field: str, expected: str) -> None:
    given = content.get(field)
    if given is None:
        return
    given = common.obj(given, f"spec.content.{field}")
    common.only_keys(given, {"algorithm", "value"}, f"spec.content.{field}")
    if given.get("algorithm") != "sha256" or given.get("value") != expected:
        raise InvalidInput(f"spec.content.{field} does not match the envelope (sha256 {expected})")


def propose_v002(spec: Any, *, verify: bool = True) -> Proposed:
    """Validate an ``intoto`` 0.0.2 spec, verify its signatures and build the canonical body.

    ``verify=False`` skips only the signature checks (looking an entry up, never logging it).
    """
    spec = common.obj(spec, "spec")
    common.only_keys(spec, {"content"}, "spec")
    content = common.obj(spec.get("content"), "spec.content")
    common.only_keys(content, {"envelope", "hash", "payloadHash"}, "spec.content")
    env = common.obj(content.get("envelope"), "spec.content.envelope")
    common.only_keys(env, {"payload", "payloadType", "signatures"}, "spec.content.envelope")
    payload_type = common.string(env.get("payloadType"), "spec.content.envelope.payloadType")
    payload_outer = common.b64(env.get("payload"), "spec.content.envelope.payload")
    payload_text, payload = _inner_b64(payload_outer, "spec.content.envelope.payload")
    raw_sigs = env.get("signatures")
    if not isinstance(raw_sigs, list) or not raw_sigs:
        raise InvalidInput("spec.content.envelope.signatures must be a non-empty list")
    if len(raw_sigs) > MAX_SIGNATURES:
        raise InvalidInput(f"spec.content.envelope.signatures has more than {MAX_SIGNATURES}")
    message = pae(payload_type, payload)
    hashed_sigs: list[dict[str, str]] = []
    stored_sigs: list[dict[str, str]] = []
    for i, raw_item in enumerate(raw_sigs):
        what = f"spec.content.envelope.signatures[{i}]"
        item = common.obj(raw_item, what)
        common.only_keys(item, {"sig", "publicKey", "keyid"}, what)
        sig_outer = common.b64(item.get("sig"), f"{what}.sig")
        sig_text, sig = _inner_b64(sig_outer, f"{what}.sig")
        pem = common.b64(item.get("publicKey"), f"{what}.publicKey")
        verifier = common.load_pem_verifier(pem, f"{what}.publicKey")
        keyid = item.get("keyid", "")
        if not isinstance(keyid, str):
            raise InvalidInput(f"{what}.keyid must be a string")
        try:
            if verify:
                common.verify_message(verifier, sig, message)
        except EntrySignatureError as exc:
            raise EntrySignatureError(f"{what} does not verify over the DSSE PAE") from exc
        hashed: dict[str, str] = {"sig": sig_text, "publicKey": pem.decode("utf-8", "replace")}
        stored: dict[str, str] = {"sig": common.b64e(sig_outer), "publicKey": common.b64e(pem)}
        if keyid:
            hashed["keyid"] = stored["keyid"] = keyid
        hashed_sigs.append(hashed)
        stored_sigs.append(stored)
    payload_hash = common.sha256_hex(payload)
    envelope_hash = common.sha256_hex(
        common.jcs(
            {"payloadType": payload_type, "payload": payload_text, "signatures": hashed_sigs}
        )
    )
    _check_hash(content, "payloadHash", payload_hash)
    _check_hash(content, "hash", envelope_hash)
    body = {
        "apiVersion": "0.0.2",
        "kind": KIND,
        "spec": {
            "content": {
                "envelope": {
                    "payload": common.b64e(payload_outer),
                    "payloadType": payload_type,
                    "signatures": stored_sigs,
                },
                "hash": {"algorithm": "sha256", "value": envelope_hash},
                "payloadHash": {"algorithm": "sha256", "value": payload_hash},
            }
        },
    }
    return Proposed(KIND, "0.0.2", common.jcs(body))
