"""The ``hashedrekord`` kind: a signature over an artifact digest, with its key or certificate.

* v0.0.1 is Rekor v1's form (protocols.md §3.1, rekor ``pkg/types/hashedrekord/v0.0.1``): hex
  digest, base64 PEM key. The canonical body re-encodes the key as canonical PEM (interop.md §5
  gotcha 3) so that sigstore-python's rebuilt body matches whatever PEM the client sent.
* v0.0.2 is Rekor v2's (protocols.md §4, rekor-tiles ``pkg/types/hashedrekord``): base64 digest,
  DER certificate or SPKI, and ``keyDetails`` from the allowed algorithm set, which fixes the hash.

Both verify the signature over the digest before anything is logged.
"""

from __future__ import annotations

from typing import Any

from keyless.errors import InvalidInput
from keyless.services.tlog.kinds import common
from keyless.services.tlog.kinds.common import Proposed, Verifier
from keyless.services.tlog.kinds.keydetails import check_key_details, hash_name_for
from keyless.services.tlog.search import ParsedEntry

KIND = "hashedrekord"


def propose_v001(spec: Any, *, verify: bool = True) -> Proposed:
    """Validate a Rekor v1 ``hashedrekord`` 0.0.1 spec and build its canonical body.

    ``verify=False`` skips only the signature check (looking an entry up, never logging it).
    """
    spec = common.obj(spec, "spec")
    common.only_keys(spec, {"signature", "data"}, "spec")
    signature = common.obj(spec.get("signature"), "spec.signature")
    common.only_keys(signature, {"content", "format", "publicKey"}, "spec.signature")
    sig = common.b64(signature.get("content"), "spec.signature.content")
    public_key = common.obj(signature.get("publicKey"), "spec.signature.publicKey")
    common.only_keys(public_key, {"content"}, "spec.signature.publicKey")
    pem = common.b64(public_key.get("content"), "spec.signature.publicKey.content")
    verifier = common.load_pem_verifier(pem, "spec.signature.publicKey.content")
    data = common.obj(spec.get("data"), "spec.data")
    common.only_keys(data, {"hash"}, "spec.data")
    hash_ = common.obj(data.get("hash"), "spec.data.hash")
    common.only_keys(hash_, {"algorithm", "value"}, "spec.data.hash")
    algorithm = hash_.get("algorithm")
    if not isinstance(algorithm, str) or algorithm not in common.HASHES_V1:
        raise InvalidInput("spec.data.hash.algorithm must be one of sha256, sha384, sha512")
    digest = common.hex_digest(hash_.get("value"), algorithm, "spec.data.hash.value")
    if verify:
        common.verify_digest(verifier, sig, digest, common.HASHES_V1[algorithm])
    body = {
        "apiVersion": "0.0.1",
        "kind": KIND,
        "spec": {
            "data": {"hash": {"algorithm": algorithm, "value": digest.hex()}},
            "signature": {
                "content": common.b64e(sig),
                "publicKey": {"content": common.b64e(verifier.canonical_pem())},
            },
        },
    }
    return Proposed(KIND, "0.0.1", common.jcs(body))


def parse_verifier_v2(value: Any, what: str) -> tuple[Verifier, str, dict[str, Any]]:
    """A Rekor v2 ``Verifier`` message: the key, its ``keyDetails`` and its canonical JSON.

    Exactly one of ``x509Certificate`` / ``publicKey`` (protobuf ``oneof``), each with
    ``rawBytes``; ``keyDetails`` must be allowed and match the key (rekor-tiles algorithm registry).
    """
    verifier, details, field, raw = _verifier_v2(value, what)
    return verifier, details, {"keyDetails": details, field: {"rawBytes": raw}}


def _verifier_v2(value: Any, what: str) -> tuple[Verifier, str, str, str]:
    """:func:`parse_verifier_v2`'s checks: the key, its allowed ``keyDetails``, the ``oneof``
    field given and the canonical (re-encoded) base64 of its ``rawBytes``."""
    value = common.obj(value, what)
    common.only_keys(value, _VERIFIER_FIELDS, what)
    has_cert, has_key = "x509Certificate" in value, "publicKey" in value
    if has_cert == has_key:
        raise InvalidInput(f"{what} must have exactly one of x509Certificate or publicKey")
    field = "x509Certificate" if has_cert else "publicKey"
    holder = common.obj(value[field], f"{what}.{field}")
    common.only_keys(holder, _RAW_BYTES, f"{what}.{field}")
    raw, raw_text = common.b64_canonical(holder.get("rawBytes"), f"{what}.{field}.rawBytes")
    verifier = (
        common.load_der_certificate(raw, f"{what}.{field}.rawBytes")
        if has_cert
        else common.load_der_public_key(raw, f"{what}.{field}.rawBytes")
    )
    details = value.get("keyDetails")
    if not isinstance(details, str):
        raise InvalidInput(f"{what}.keyDetails must be a PublicKeyDetails name")
    check_key_details(verifier, details, f"{what}.keyDetails")
    return verifier, details, field, raw_text


_VERIFIER_FIELDS = frozenset({"x509Certificate", "publicKey", "keyDetails"})
_RAW_BYTES = frozenset({"rawBytes"})
_REQUEST_V002 = "hashedRekordRequestV002"
_REQUEST_FIELDS = frozenset({"digest", "signature"})
_SIGNATURE_FIELDS = frozenset({"content", "verifier"})

#: The 0.0.2 canonical body: RFC 8785 JCS of ``{"apiVersion", "kind", "spec": {"hashedRekordV002":
#: {"data": {"algorithm", "digest"}, "signature": {"content", "verifier": {"keyDetails",
#: <x509Certificate|publicKey>: {"rawBytes"}}}}}}``, written out (keys in JCS order) instead of
#: built as a dict and serialised: every value is base64 or a name from a fixed table (ASCII, no
#: escape), so the bytes are exactly ``common.jcs``'s (tests/unit/tlog/test_tlog_jcs.py).
_BODY_V002 = (
    '{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{"hashedRekordV002":{'
    '"data":{"algorithm":"%s","digest":"%s"},'
    '"signature":{"content":"%s","verifier":{"keyDetails":"%s","%s":{"rawBytes":"%s"}}}}}}'
)


def propose_v002(request: Any) -> Proposed:
    """Validate a Rekor v2 ``hashedRekordRequestV002`` and build the 0.0.2 entry (JCS)."""
    what = _REQUEST_V002
    request = common.obj(request, what)
    common.only_keys(request, _REQUEST_FIELDS, what)
    digest, digest_text = common.b64_canonical(request.get("digest"), f"{what}.digest")
    signature = common.obj(request.get("signature"), f"{what}.signature")
    common.only_keys(signature, _SIGNATURE_FIELDS, f"{what}.signature")
    sig, sig_text = common.b64_canonical(signature.get("content"), f"{what}.signature.content")
    verifier, details, field, raw = _verifier_v2(
        signature.get("verifier"), f"{what}.signature.verifier"
    )
    if details == "PKIX_ED25519":
        raise InvalidInput(
            f"{what}: keyDetails PKIX_ED25519 cannot sign a digest; use PKIX_ED25519_PH"
        )
    hash_name = hash_name_for(details)
    common.verify_digest(verifier, sig, digest, common.HASHES_V2[hash_name])
    body = _BODY_V002 % (hash_name, digest_text, sig_text, details, field, raw)
    parsed = ParsedEntry(hash_name, digest, verifier.key, verifier.certificate)
    return Proposed(KIND, "0.0.2", body.encode(), parsed)
