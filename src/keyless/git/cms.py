"""The git signature: a detached CMS SignedData in gitsign's layout (docs/git.md).

Layout (RFC 5652; gitsign ``internal/signature/sign.go`` + smimesign's ``ietf-cms``)::

    ContentInfo { signedData:
      SignedData v1 { digestAlgorithms {sha256}, encapContentInfo {id-data, no content},
        certificates {the short-lived leaf},
        signerInfos { SignerInfo v1 {
          sid issuerAndSerialNumber, digestAlgorithm sha256,
          signedAttrs (DER-sorted) {contentType id-data, signingTime,
                                    messageDigest sha256(payload)},
          signatureAlgorithm ecdsa-with-SHA256,
          signature ECDSA-P256 over sha256(DER SET OF signedAttrs),
          unsignedAttrs { id-aa-timeStampToken (RFC 3161 token over the signature) ...,
                          1.3.6.1.4.1.57264.3.1 OCTET STRING (TransparencyLogEntry protobuf) }}}}}

armored as ``-----BEGIN SIGNED MESSAGE-----`` (64-column base64). The log records a hashedrekord
over ``sha256(signedAttrs)`` with the CMS signature: the same bytes gitsign's offline mode logs.

The ``cryptography`` PKCS#7 builder would give the signed part but cannot add unsigned
attributes or parse, so both directions use asn1crypto (imported here, at first use of this
module; keep imports of it lazy elsewhere).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1x509

from keyless.errors import InvalidInput

__all__ = [
    "ARMOR_BEGIN",
    "ARMOR_END",
    "MAX_SIGNATURE",
    "REKOR_ENTRY_OID",
    "ParsedSignature",
    "armor",
    "assemble",
    "dearmor",
    "parse",
    "signed_attributes",
]

ARMOR_BEGIN = "-----BEGIN SIGNED MESSAGE-----"
ARMOR_END = "-----END SIGNED MESSAGE-----"
#: gitsign's unsigned attribute holding the ``TransparencyLogEntry`` protobuf
REKOR_ENTRY_OID = "1.3.6.1.4.1.57264.3.1"
#: a signature with certificate, proof, checkpoint and a timestamp is a few kB
MAX_SIGNATURE = 256 << 10
_TIMESTAMP_ATTR = "signature_time_stamp_token"


def signed_attributes(payload: bytes, signing_time: datetime) -> bytes:
    """The DER ``SET OF Attribute`` that is signed: content type, signing time, message digest.

    DER sorts a SET OF by the encodings of its elements; the result is what the signature and
    the log entry cover (as ``SignedAttrs`` in the SignerInfo it is tagged [0] instead).
    """
    when = signing_time.astimezone(UTC).replace(microsecond=0)
    attributes = [
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": when})]}),
        cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(payload).digest()]}),
    ]
    ordered = sorted(attributes, key=lambda a: a.dump())
    return bytes(cms.CMSAttributes(ordered).dump())


def assemble(
    signed_attrs: bytes,
    signature: bytes,
    certificate_der: bytes,
    *,
    timestamps: tuple[bytes, ...] = (),
    log_entry: bytes | None = None,
) -> bytes:
    """The DER ContentInfo of a detached SignedData (see the module docstring)."""
    cert = asn1x509.Certificate.load(certificate_der)
    unsigned: list[cms.CMSAttribute] = []
    if timestamps:
        tokens = [cms.ContentInfo.load(token) for token in timestamps]
        unsigned.append(cms.CMSAttribute({"type": _TIMESTAMP_ATTR, "values": tokens}))
    if log_entry is not None:
        unsigned.append(
            cms.CMSAttribute({"type": REKOR_ENTRY_OID, "values": [core.OctetString(log_entry)]})
        )
    signer_info = {
        "version": "v1",
        "sid": cms.SignerIdentifier(
            {
                "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                    {"issuer": cert.issuer, "serial_number": cert.serial_number}
                )
            }
        ),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
        "signed_attrs": cms.CMSAttributes.load(signed_attrs),
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
        "signature": signature,
    }
    if unsigned:
        signer_info["unsigned_attrs"] = cms.CMSAttributes(unsigned)
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "data"},
            "certificates": [cert],
            "signer_infos": [cms.SignerInfo(signer_info)],
        }
    )
    info = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
    return bytes(info.dump())


def armor(der: bytes) -> bytes:
    """PEM with the ``SIGNED MESSAGE`` label git recognises as x509 (64-column lines)."""
    text = base64.b64encode(der).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return "\n".join([ARMOR_BEGIN, *lines, ARMOR_END, ""]).encode()


def dearmor(data: bytes) -> bytes:
    """The DER inside an armored signature (raw DER is accepted too, as gitsign does)."""
    if len(data) > MAX_SIGNATURE:
        raise InvalidInput(f"the signature is larger than {MAX_SIGNATURE >> 10} KiB")
    if data[:1] == b"\x30":
        return data
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise InvalidInput("the signature is neither armored text nor DER") from exc
    lines = [line.strip() for line in text.replace("\r", "").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines or lines[0] != ARMOR_BEGIN or lines[-1] != ARMOR_END:
        raise InvalidInput(f"the signature is not armored as {ARMOR_BEGIN}")
    try:
        return base64.b64decode("".join(lines[1:-1]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("the armored signature is not valid base64") from exc


@dataclass(frozen=True)
class ParsedSignature:
    """What a git CMS signature carries, checked for shape (not yet for validity)."""

    certificate_der: bytes
    signed_attrs: bytes
    message_digest: bytes
    signing_time: datetime | None
    signature: bytes
    timestamps: tuple[bytes, ...]
    log_entry: bytes | None

    @property
    def signed_attrs_digest(self) -> bytes:
        """SHA-256 of the signed attributes: what the signature and the log entry cover."""
        return hashlib.sha256(self.signed_attrs).digest()


def _one(values: list[object], what: str) -> object:
    if len(values) != 1:
        raise InvalidInput(f"the CMS signature has {len(values)} {what}, expected one")
    return values[0]


def parse(der: bytes) -> ParsedSignature:
    """Parse a detached SignedData of the layout above; any other shape is InvalidInput."""
    try:
        return _parse(der)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        # asn1crypto parses lazily: malformed DER surfaces on access, as ValueError mostly
        raise InvalidInput(f"the CMS signature is malformed: {' '.join(str(exc).split())}") from exc


def _parse(der: bytes) -> ParsedSignature:
    info = cms.ContentInfo.load(der, strict=True)
    if info["content_type"].native != "signed_data":
        raise InvalidInput("the CMS signature is not SignedData")
    sd = info["content"]
    encap = sd["encap_content_info"]
    if encap["content_type"].native != "data":
        raise InvalidInput("the CMS signature does not sign id-data")
    if encap["content"].native is not None:
        raise InvalidInput("the CMS signature is not detached (it carries content)")
    signer = _one(list(sd["signer_infos"]), "signer infos")
    assert isinstance(signer, cms.SignerInfo)
    if signer["digest_algorithm"]["algorithm"].native != "sha256":
        raise InvalidInput("the CMS signer's digest algorithm is not SHA-256")
    if signer["signature_algorithm"]["algorithm"].native not in ("sha256_ecdsa", "ecdsa"):
        raise InvalidInput("the CMS signature algorithm is not ECDSA with SHA-256")
    certs = [c.chosen for c in sd["certificates"] if c.name == "certificate"]
    sid = signer["sid"]
    if sid.name != "issuer_and_serial_number":
        raise InvalidInput("the CMS signer is not identified by issuer and serial number")
    wanted = sid.chosen
    leaf = [
        c
        for c in certs
        if c.serial_number == wanted["serial_number"].native and c.issuer == wanted["issuer"]
    ]
    cert = _one(leaf, "certificates matching the signer")
    assert isinstance(cert, asn1x509.Certificate)
    attrs = signer["signed_attrs"]
    if not isinstance(attrs, cms.CMSAttributes) or not len(attrs):
        raise InvalidInput("the CMS signature has no signed attributes")
    by_type: dict[str, list[object]] = {}
    for attr in attrs:
        name = attr["type"].native
        if name in by_type:
            raise InvalidInput(f"the CMS signed attribute {name} appears twice")
        by_type[name] = list(attr["values"])
    content_type = _one(by_type.get("content_type", []), "content-type attributes")
    if getattr(content_type, "native", None) != "data":
        raise InvalidInput("the CMS content-type attribute is not id-data")
    digest = _one(by_type.get("message_digest", []), "message-digest attributes")
    digest_bytes = getattr(digest, "native", None)
    if not isinstance(digest_bytes, bytes) or len(digest_bytes) != 32:
        raise InvalidInput("the CMS message-digest attribute is not a SHA-256 digest")
    signing_time: datetime | None = None
    if "signing_time" in by_type:
        when = _one(by_type["signing_time"], "signing-time attributes")
        native = getattr(when, "native", None)
        signing_time = native if isinstance(native, datetime) else None
    timestamps: list[bytes] = []
    entry: bytes | None = None
    unsigned = signer["unsigned_attrs"]
    if isinstance(unsigned, cms.CMSAttributes):
        for attr in unsigned:
            name = attr["type"].native
            if name == _TIMESTAMP_ATTR:
                timestamps.extend(bytes(v.dump()) for v in attr["values"])
            elif attr["type"].dotted == REKOR_ENTRY_OID:
                if entry is not None:
                    raise InvalidInput("the CMS signature carries two log entry attributes")
                value = _one(list(attr["values"]), "log entries in the attribute")
                assert isinstance(value, core.Asn1Value)
                entry = core.OctetString.load(value.dump(), strict=True).native
    signed_set = bytes(attrs.untag().dump(force=True))
    return ParsedSignature(
        certificate_der=bytes(cert.dump()),
        signed_attrs=signed_set,
        message_digest=digest_bytes,
        signing_time=signing_time,
        signature=bytes(signer["signature"].native),
        timestamps=tuple(timestamps),
        log_entry=entry,
    )
