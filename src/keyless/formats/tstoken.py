"""Reading a signed RFC 3161 timestamp for verification (RFC 3161 §2.4.2, RFC 5652 §5).

A Sigstore bundle's ``rfc3161Timestamps[].signedTimestamp`` holds a DER ``TimeStampResp``::

    TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken ContentInfo OPTIONAL }
    ContentInfo   ::= SEQUENCE { contentType id-signedData, content [0] EXPLICIT SignedData }
    SignedData    ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo,
                                 certificates [0] IMPLICIT OPTIONAL, crls [1] IMPLICIT OPTIONAL,
                                 signerInfos SET OF SignerInfo }
    EncapsulatedContentInfo ::= SEQUENCE { eContentType id-ct-TSTInfo,
                                           eContent [0] EXPLICIT OCTET STRING (TSTInfo) }
    SignerInfo    ::= SEQUENCE { version, sid, digestAlgorithm, signedAttrs [0] IMPLICIT,
                                 signatureAlgorithm, signature OCTET STRING, unsignedAttrs [1] }
    TSTInfo       ::= SEQUENCE { version (1), policy, messageImprint, serialNumber, genTime, … }

:func:`parse_signed_timestamp` walks exactly this with :mod:`keyless.formats.der` and returns the
fields a verifier needs, byte spans included (the signed attributes re-tagged as the ``SET OF``
that was signed, RFC 5652 §5.4). It checks structure only; :mod:`keyless.verify.rfc3161`
decides whether the token is trustworthy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from keyless.formats import der
from keyless.formats.der import DERError

#: Object identifiers compared as DER content octets.
ID_SIGNED_DATA: Final = der.encode_oid("1.2.840.113549.1.7.2")
ID_CT_TST_INFO: Final = der.encode_oid("1.2.840.113549.1.9.16.1.4")
ID_CONTENT_TYPE: Final = der.encode_oid("1.2.840.113549.1.9.3")
ID_MESSAGE_DIGEST: Final = der.encode_oid("1.2.840.113549.1.9.4")

#: SHA-256, SHA-384 and SHA-512 (RFC 5754 §2), the digests Sigstore TSAs use.
DIGESTS: Final = {
    der.encode_oid("2.16.840.1.101.3.4.2.1"): "sha256",
    der.encode_oid("2.16.840.1.101.3.4.2.2"): "sha384",
    der.encode_oid("2.16.840.1.101.3.4.2.3"): "sha512",
}

#: RSASSA-PSS (RFC 4055 §3.1): refused, its parameters would change the verification.
ID_RSASSA_PSS: Final = der.encode_oid("1.2.840.113549.1.1.10")
_NO_PARAMETERS: Final = (b"", b"\x05\x00")

#: PKIStatus granted (RFC 3161 §2.4.2); rfc3161-client accepts nothing else, nor do we.
GRANTED: Final = 0


class MalformedTimestamp(ValueError):
    """The bytes are not a well-formed signed RFC 3161 timestamp; the message says which part."""


@dataclass(frozen=True)
class SignedTimestamp:
    """The verification-relevant fields of one ``TimeStampResp``."""

    status: int
    gen_time: datetime
    imprint_algorithm: bytes  # OID content octets of messageImprint.hashAlgorithm
    imprint: bytes  # messageImprint.hashedMessage
    tst_info: bytes  # the eContent octets: the DER TSTInfo that the signature covers
    signer_count: int
    digest_algorithm: bytes  # OID content octets of the SignerInfo's digestAlgorithm
    signed_attributes: bytes  # DER SET OF Attribute: what the signature is over
    content_type: bytes | None  # the contentType attribute's OID content octets
    message_digest: bytes | None  # the messageDigest attribute's value
    signature: bytes
    signer_issuer: bytes  # issuerAndSerialNumber: the issuer Name's full DER
    signer_serial: int
    certificates: tuple[bytes, ...]  # full DER of each embedded certificate


def parse_signed_timestamp(data: bytes) -> SignedTimestamp:
    """Parse a DER ``TimeStampResp``; raises :class:`MalformedTimestamp` naming the bad field."""
    try:
        return _parse(data)
    except DERError as exc:
        raise MalformedTimestamp(str(exc)) from exc


def _algorithm(data: bytes, start: int, stop: int, what: str) -> tuple[bytes, bytes]:
    """``(OID octets, raw parameters)`` of an AlgorithmIdentifier's content span."""
    oid_start, oid_stop = der.expect(data, start, stop, der.OID, what)
    return data[oid_start:oid_stop], data[oid_stop:stop]


def _parse(data: bytes) -> SignedTimestamp:
    start, stop = der.expect(data, 0, len(data), der.SEQUENCE, "TimeStampResp")
    if stop != len(data):
        raise DERError("trailing bytes after the TimeStampResp")
    parts = der.children(data, start, stop)
    if not parts or parts[0][0] != der.SEQUENCE:
        raise DERError("TimeStampResp: missing status")
    status = _status(data, parts[0][1], parts[0][2])
    if len(parts) != 2:
        raise DERError("TimeStampResp: no timeStampToken")
    tag, ci_start, ci_stop = parts[1]
    if tag != der.SEQUENCE:
        raise DERError("timeStampToken: expected a ContentInfo SEQUENCE")
    ci = der.children(data, ci_start, ci_stop)
    if len(ci) != 2 or ci[0][0] != der.OID or data[ci[0][1] : ci[0][2]] != ID_SIGNED_DATA:
        raise DERError("timeStampToken: not a CMS SignedData")
    if ci[1][0] != 0xA0:
        raise DERError("timeStampToken: content is not [0] EXPLICIT")
    sd_start, sd_stop = der.expect(data, ci[1][1], ci[1][2], der.SEQUENCE, "SignedData")
    if sd_stop != ci[1][2]:
        raise DERError("SignedData: trailing bytes")
    return _signed_data(data, sd_start, sd_stop, status)


def _status(data: bytes, start: int, stop: int) -> int:
    """PKIStatusInfo (RFC 3161 §2.4.2): status, then optional statusString and failInfo."""
    fields = der.children(data, start, stop)
    if not fields or fields[0][0] != der.INTEGER:
        raise DERError("PKIStatusInfo: expected a status INTEGER")
    if stop - start > 1024:
        raise DERError("PKIStatusInfo: too long")
    status = der.integer(data, fields[0][1], fields[0][2], "PKIStatusInfo.status")
    if not 0 <= status <= 255:  # PKIStatus is 0..5; rfc3161-client reads one octet
        raise DERError("PKIStatusInfo.status: out of range")
    rest = fields[1:]
    if rest and rest[0][0] == der.SEQUENCE:  # statusString: SEQUENCE OF UTF8String
        if any(tag != 0x0C for tag, _, _ in der.children(data, rest[0][1], rest[0][2])):
            raise DERError("PKIStatusInfo.statusString: expected UTF8Strings")
        rest = rest[1:]
    if rest and rest[0][0] == der.BIT_STRING:  # failInfo
        rest = rest[1:]
    if rest:
        raise DERError("PKIStatusInfo: unexpected fields")
    return status


def _signed_data(data: bytes, start: int, stop: int, status: int) -> SignedTimestamp:
    fields = der.children(data, start, stop)
    if len(fields) < 4 or fields[0][0] != der.INTEGER or fields[1][0] != der.SET:
        raise DERError("SignedData: expected version, digestAlgorithms, encapContentInfo, …")
    listed = _digest_algorithms(data, fields[1][1], fields[1][2])
    tag, e_start, e_stop = fields[2]
    if tag != der.SEQUENCE:
        raise DERError("SignedData.encapContentInfo: expected a SEQUENCE")
    encap = der.children(data, e_start, e_stop)
    if len(encap) != 2 or encap[0][0] != der.OID or encap[1][0] != 0xA0:
        raise DERError("encapContentInfo: expected eContentType and [0] eContent")
    if data[encap[0][1] : encap[0][2]] != ID_CT_TST_INFO:
        raise DERError("encapContentInfo: eContentType is not id-ct-TSTInfo")
    o_start, o_stop = der.expect(data, encap[1][1], encap[1][2], der.OCTET_STRING, "eContent")
    if o_stop != encap[1][2]:
        raise DERError("eContent: trailing bytes")
    tst_info = data[o_start:o_stop]
    gen_time, imprint_algorithm, imprint = _tst_info(tst_info)

    certificates: tuple[bytes, ...] = ()
    rest = fields[3:]
    if rest and rest[0][0] == 0xA0:  # certificates [0] IMPLICIT SET OF CertificateChoices
        members = der.set_members(data, rest[0][1], rest[0][2], "SignedData.certificates")
        if any(tag != der.SEQUENCE for tag, _, _, _ in members):
            raise DERError("SignedData.certificates: only X.509 certificates are supported")
        certificates = tuple(data[begin:end] for _, begin, _, end in members)
        rest = rest[1:]
    if rest and rest[0][0] == 0xA1:  # crls [1] IMPLICIT: no Sigstore TSA sends revocation data
        if rest[0][1] != rest[0][2]:
            raise DERError("SignedData: revocation information is not supported in a timestamp")
        rest = rest[1:]
    if len(rest) != 1 or rest[0][0] != der.SET:
        raise DERError("SignedData: expected signerInfos last")
    signers = der.set_members(data, rest[0][1], rest[0][2], "SignedData.signerInfos")
    if not signers:
        raise DERError("SignedData: no SignerInfo")
    tag, _, si_start, si_stop = signers[0]
    if tag != der.SEQUENCE:
        raise DERError("SignerInfo: expected a SEQUENCE")
    return _signer_info(
        data,
        si_start,
        si_stop,
        status=status,
        gen_time=gen_time,
        imprint_algorithm=imprint_algorithm,
        imprint=imprint,
        tst_info=tst_info,
        signer_count=len(signers),
        certificates=certificates,
        listed=listed,
    )


def _digest_algorithms(data: bytes, start: int, stop: int) -> frozenset[bytes]:
    """SignedData.digestAlgorithms: every entry a known digest, as OpenSSL's PKCS7_verify needs."""
    listed: set[bytes] = set()
    for tag, _, a_start, a_stop in der.set_members(data, start, stop, "digestAlgorithms"):
        if tag != der.SEQUENCE:
            raise DERError("SignedData.digestAlgorithms: expected AlgorithmIdentifiers")
        algorithm = _digest(data, a_start, a_stop, "SignedData.digestAlgorithms")
        listed.add(algorithm)
    return frozenset(listed)


def _digest(data: bytes, start: int, stop: int, what: str) -> bytes:
    """A digest AlgorithmIdentifier's OID: SHA-2 with absent or NULL parameters (RFC 5754 §2)."""
    algorithm, params = _algorithm(data, start, stop, what)
    if algorithm not in DIGESTS or params not in _NO_PARAMETERS:
        raise DERError(f"{what}: unsupported digest algorithm")
    return algorithm


def _tst_info(tst: bytes) -> tuple[datetime, bytes, bytes]:
    start, stop = der.expect(tst, 0, len(tst), der.SEQUENCE, "TSTInfo")
    if stop != len(tst):
        raise DERError("TSTInfo: trailing bytes")
    fields = der.children(tst, start, stop)
    if len(fields) < 5:
        raise DERError("TSTInfo: missing fields")
    (vt, vs, ve), (pt, _, _), (mt, ms, me), (nt, _, _), (gt, gs, ge) = fields[:5]
    if vt != der.INTEGER or der.integer(tst, vs, ve, "TSTInfo.version") != 1:
        raise DERError("TSTInfo: version must be 1")
    if pt != der.OID or mt != der.SEQUENCE or nt != der.INTEGER or gt != der.GENERALIZED_TIME:
        raise DERError("TSTInfo: expected policy, messageImprint, serialNumber, genTime")
    imprint = der.children(tst, ms, me)
    if len(imprint) != 2 or imprint[0][0] != der.SEQUENCE or imprint[1][0] != der.OCTET_STRING:
        raise DERError("TSTInfo.messageImprint: expected hashAlgorithm and hashedMessage")
    algorithm, params = _algorithm(tst, imprint[0][1], imprint[0][2], "messageImprint")
    if params not in (b"", b"\x05\x00"):
        raise DERError("messageImprint.hashAlgorithm: unexpected parameters")
    return (
        der.generalized_time(tst, gs, ge, "TSTInfo.genTime"),
        algorithm,
        tst[imprint[1][1] : imprint[1][2]],
    )


def _signer_info(
    data: bytes,
    start: int,
    stop: int,
    *,
    status: int,
    gen_time: datetime,
    imprint_algorithm: bytes,
    imprint: bytes,
    tst_info: bytes,
    signer_count: int,
    certificates: tuple[bytes, ...],
    listed: frozenset[bytes],
) -> SignedTimestamp:
    pos = start
    tag, _, pos = der.element(data, pos, stop)  # version
    if tag != der.INTEGER:
        raise DERError("SignerInfo.version: expected an INTEGER")
    sid_pos = pos
    tag, sid_start, pos = der.element(data, pos, stop)
    if tag != der.SEQUENCE:  # only issuerAndSerialNumber, as rfc3161-client (and every TSA)
        raise DERError(f"SignerInfo.sid: unsupported signer identifier (tag 0x{data[sid_pos]:02x})")
    name_tag, _, name_stop = der.element(data, sid_start, pos)
    if name_tag != der.SEQUENCE:
        raise DERError("SignerInfo.sid: expected an issuer Name")
    issuer = data[sid_start:name_stop]
    n_start, n_stop = der.expect(data, name_stop, pos, der.INTEGER, "SignerInfo.sid serial")
    if n_stop != pos:
        raise DERError("SignerInfo.sid: trailing bytes")
    serial = der.integer(data, n_start, n_stop, "SignerInfo.sid serial")
    d_start, pos = der.expect(data, pos, stop, der.SEQUENCE, "SignerInfo.digestAlgorithm")
    digest_algorithm = _digest(data, d_start, pos, "SignerInfo.digestAlgorithm")
    if digest_algorithm not in listed:
        raise DERError("SignerInfo.digestAlgorithm is not among SignedData.digestAlgorithms")
    attrs_pos = pos
    tag, a_start, a_stop = der.element(data, pos, stop)
    if tag != 0xA0:
        raise DERError("SignerInfo: signedAttrs are required for a TSTInfo (RFC 5652 §5.3)")
    signed_attributes = b"\x31" + data[attrs_pos + 1 : a_stop]
    content_type, message_digest = _attributes(data, a_start, a_stop)
    pos = a_stop
    s_start, pos = der.expect(data, pos, stop, der.SEQUENCE, "SignerInfo.signatureAlgorithm")
    # Unsigned: the trusted key decides the scheme; only malformed or PSS parameters are refused.
    signature_algorithm, params = _algorithm(data, s_start, pos, "SignerInfo.signatureAlgorithm")
    if signature_algorithm == ID_RSASSA_PSS or params not in _NO_PARAMETERS:
        raise DERError("SignerInfo.signatureAlgorithm: unsupported parameters")
    sig_start, pos = der.expect(data, pos, stop, der.OCTET_STRING, "SignerInfo.signature")
    signature = data[sig_start:pos]
    if pos < stop:
        tag, u_start, pos = der.element(data, pos, stop)
        if tag != 0xA1 or pos != stop:
            raise DERError("SignerInfo: unexpected fields after the signature")
        _attributes(data, u_start, pos)  # unsignedAttrs: well-formed Attributes, in DER order
    return SignedTimestamp(
        status=status,
        gen_time=gen_time,
        imprint_algorithm=imprint_algorithm,
        imprint=imprint,
        tst_info=tst_info,
        signer_count=signer_count,
        digest_algorithm=digest_algorithm,
        signed_attributes=signed_attributes,
        content_type=content_type,
        message_digest=message_digest,
        signature=signature,
        signer_issuer=issuer,
        signer_serial=serial,
        certificates=certificates,
    )


def _attributes(data: bytes, start: int, stop: int) -> tuple[bytes | None, bytes | None]:
    """The contentType and messageDigest attributes (RFC 5652 §11.1, §11.2): each at most once,
    each with exactly one value."""
    content_type: bytes | None = None
    message_digest: bytes | None = None
    for tag, _, a_start, a_stop in der.set_members(data, start, stop, "attributes"):
        if tag != der.SEQUENCE:
            raise DERError("signedAttrs: expected Attribute SEQUENCEs")
        t_start, t_stop = der.expect(data, a_start, a_stop, der.OID, "Attribute.attrType")
        v_start, v_stop = der.expect(data, t_stop, a_stop, der.SET, "Attribute.attrValues")
        if v_stop != a_stop:
            raise DERError("Attribute: trailing bytes")
        kind = data[t_start:t_stop]
        if kind not in (ID_CONTENT_TYPE, ID_MESSAGE_DIGEST):
            der.set_members(data, v_start, v_stop, "Attribute.attrValues")  # well-formed
            continue
        values = der.children(data, v_start, v_stop)
        if len(values) != 1:
            raise DERError("signedAttrs: contentType/messageDigest must have exactly one value")
        (vtag, vs, ve) = values[0]
        if kind == ID_CONTENT_TYPE:
            if content_type is not None or vtag != der.OID:
                raise DERError("signedAttrs: duplicate or malformed contentType")
            content_type = data[vs:ve]
        else:
            if message_digest is not None or vtag != der.OCTET_STRING:
                raise DERError("signedAttrs: duplicate or malformed messageDigest")
            message_digest = data[vs:ve]
    return content_type, message_digest
