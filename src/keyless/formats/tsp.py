"""RFC 3161 Time-Stamp Protocol messages: parsing queries, building responses and tokens.

Pure and synchronous (no I/O). Two request dialects reach a Sigstore TSA (protocols.md §8,
interop.md §5 item 4): the DER ``TimeStampReq`` of RFC 3161 §2.4.1 (sigstore-python, openssl) and
the JSON form of sigstore/timestamp-authority (sigstore-js). Both are normalised to one
:class:`TimestampQuery` and answered with a DER ``TimeStampResp`` (RFC 3161 §2.4.2).

Every constant part of a response (algorithm identifiers, the signer identifier, the ESS
signing-certificate-v2 attribute, certificates, the TSA name) is encoded once with ``asn1crypto``
when a :class:`TokenBuilder` is made; issuing a token then only concatenates the few variable
fields (serial, genTime, imprint, nonce, digest, signature) with their DER length prefixes. That
keeps the per-request cost to two hashes and one signature, which is what the throughput target of
the TSA needs; ``tests/unit/tsa`` checks the result byte-for-byte against a response built entirely
with ``asn1crypto``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from asn1crypto import algos, cms, core, tsp, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from keyless.errors import ConfigError, InvalidInput, shown
from keyless.formats.der import element, set_order
from keyless.formats.der import encode_length as der_length
from keyless.formats.der import encode_tlv as der_tlv
from keyless.keys import KeySigner, PublicKey, hash_for_curve, spki_der

#: The policy the public-good Sigstore TSA stamps under (protocols.md §8); our default too.
DEFAULT_POLICY_OID: Final = "1.3.6.1.4.1.57264.2"

#: id-kp-timeStamping (RFC 3161 §2.3): the only, critical, EKU of a TSA certificate.
TIME_STAMPING_EKU: Final = "1.3.6.1.5.5.7.3.8"

#: PKIFailureInfo bit names (RFC 3161 §2.4.2) as asn1crypto spells them.
BAD_ALG: Final = "bad_alg"
BAD_REQUEST: Final = "bad_request"
BAD_DATA_FORMAT: Final = "bad_data_format"
TIME_NOT_AVAILABLE: Final = "time_not_available"
UNACCEPTED_POLICY: Final = "unaccepted_policy"
UNACCEPTED_EXTENSION: Final = "unaccepted_extensions"
SYSTEM_FAILURE: Final = "system_failure"

#: The largest nonce accepted (RFC 3161 §2.4.1 leaves the size open; clients send 64 bits).
MAX_NONCE_BITS: Final = 256


@dataclass(frozen=True)
class HashAlgorithm:
    """A message-imprint hash the TSA accepts (RFC 3161 §2.4.1 messageImprint)."""

    name: str  # asn1crypto / hashlib name
    oid: str
    digest_size: int


#: SHA-1 and weaker are refused with badAlg (as the Go TSA does: sha1 is a weak hash).
HASH_ALGORITHMS: Final[Mapping[str, HashAlgorithm]] = {
    "sha256": HashAlgorithm("sha256", "2.16.840.1.101.3.4.2.1", 32),
    "sha384": HashAlgorithm("sha384", "2.16.840.1.101.3.4.2.2", 48),
    "sha512": HashAlgorithm("sha512", "2.16.840.1.101.3.4.2.3", 64),
}
_HASH_BY_OID: Final = {h.oid: h for h in HASH_ALGORITHMS.values()}


class TimestampRejected(InvalidInput):
    """A query the TSA refuses; ``failure`` is the RFC 3161 §2.4.2 PKIFailureInfo bit to report."""

    def __init__(self, message: str, *, failure: str = BAD_REQUEST) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True)
class TimestampQuery:
    """What a client asked to be timestamped, whichever dialect it used.

    ``imprint_params_null`` remembers whether the request's AlgorithmIdentifier carried an explicit
    NULL parameter, because RFC 3161 §2.4.2 wants the token's messageImprint to equal the request's.
    JSON queries have no AlgorithmIdentifier and get NULL, as openssl and rfc3161-client send it.
    """

    hash_algorithm: HashAlgorithm
    digest: bytes
    nonce: int | None = None
    cert_req: bool = False
    policy: str | None = None
    imprint_params_null: bool = True


# --------------------------------------------------------------------------------------------
# Small DER helpers (X.690 §8.1.3 definite lengths) for the hot path.


def der_integer(value: int) -> bytes:
    """A DER INTEGER (X.690 §8.3: two's complement, minimal octets).

    ``int.to_bytes`` rather than asn1crypto on the hot path (the nonce of every token): 8x
    cheaper, and ``tests/unit/tsa`` checks it against asn1crypto's encoding.
    """
    size = (value if value >= 0 else ~value).bit_length() // 8 + 1
    content = value.to_bytes(size, "big", signed=True)
    return b"\x02" + der_length(len(content)) + content


# --------------------------------------------------------------------------------------------
# Queries.


def _rejected_format(message: str) -> TimestampRejected:
    return TimestampRejected(message, failure=BAD_DATA_FORMAT)


def _check_nonce(nonce: int) -> int:
    if nonce < 0:
        raise TimestampRejected("nonce must not be negative", failure=BAD_REQUEST)
    if nonce.bit_length() > MAX_NONCE_BITS:
        raise TimestampRejected(f"nonce is longer than {MAX_NONCE_BITS} bits", failure=BAD_REQUEST)
    return nonce


def _hash_for(digest: bytes, algorithm: HashAlgorithm | None, label: str) -> HashAlgorithm:
    if algorithm is None:
        raise TimestampRejected(
            f"unsupported hash algorithm {shown(label)}; use one of " + ", ".join(HASH_ALGORITHMS),
            failure=BAD_ALG,
        )
    if len(digest) != algorithm.digest_size:
        raise _rejected_format(
            f"message imprint is {len(digest)} bytes, {algorithm.name} digests are "
            f"{algorithm.digest_size}"
        )
    return algorithm


#: The hash OIDs' DER content octets, for the fast path below.
_HASH_BY_OID_CONTENT: Final = {
    bytes(core.ObjectIdentifier(h.oid).contents): h for h in HASH_ALGORITHMS.values()
}


def _parse_query_fast(der: bytes) -> TimestampQuery | None:
    """The common, well-formed query (what sigstore-python and openssl send), or None.

    A strict DER walk of RFC 3161 §2.4.1 ``TimeStampReq`` without policy or extensions; anything
    else (including every malformed input) returns None and is left to the asn1crypto parser,
    which is authoritative. ``tests/unit/tsa`` checks that whatever this accepts, asn1crypto
    parses to the same query.
    """
    try:
        tag, pos, end = element(der, 0, len(der))
        if tag != 0x30 or end != len(der):
            return None
        tag, start, pos = element(der, pos, end)  # version INTEGER v1
        if tag != 0x02 or der[start:pos] != b"\x01":
            return None
        tag, start, pos = element(der, pos, end)  # messageImprint
        if tag != 0x30:
            return None
        tag, alg_start, alg_end = element(der, start, pos)  # AlgorithmIdentifier
        if tag != 0x30:
            return None
        tag, oid_start, oid_end = element(der, alg_start, alg_end)
        algorithm = _HASH_BY_OID_CONTENT.get(der[oid_start:oid_end]) if tag == 0x06 else None
        if algorithm is None:
            return None
        params = der[oid_end:alg_end]
        if params not in (b"", b"\x05\x00"):
            return None
        tag, d_start, d_end = element(der, alg_end, pos)  # hashedMessage
        if tag != 0x04 or d_end != pos or d_end - d_start != algorithm.digest_size:
            return None
        digest = der[d_start:d_end]
        nonce: int | None = None
        cert_req = False
        if pos < end and der[pos] == 0x02:  # nonce INTEGER (reqPolicy would come first)
            tag, start, pos = element(der, pos, end)
            content = der[start:pos]
            if not content or content[0] & 0x80:  # empty or negative
                return None
            if len(content) > 1 and content[0] == 0 and not content[1] & 0x80:
                return None  # non-minimal
            nonce = int.from_bytes(content, "big")
            if nonce.bit_length() > MAX_NONCE_BITS:
                return None
        if pos < end and der[pos] == 0x01:  # certReq BOOLEAN (DER TRUE is 0xFF)
            tag, start, pos = element(der, pos, end)
            if der[start:pos] != b"\xff":
                return None
            cert_req = True
        if pos != end:  # reqPolicy out of order, extensions, or junk: the full parser decides
            return None
    except ValueError:
        return None
    return TimestampQuery(
        hash_algorithm=algorithm,
        digest=digest,
        nonce=nonce,
        cert_req=cert_req,
        imprint_params_null=bool(params),
    )


def parse_query(der: bytes) -> TimestampQuery:
    """Parse and validate a DER ``TimeStampReq`` (RFC 3161 §2.4.1).

    Raises :class:`TimestampRejected` naming the PKIFailureInfo bit: badDataFormat for anything
    that is not a well-formed v1 request, badAlg for an unsupported imprint hash,
    unacceptedExtension for any extension (§2.4.1: unrecognised extensions must be refused).
    Policy acceptance is decided by the issuer, which knows its policies. The common request
    shape takes a fast path (:func:`_parse_query_fast`); everything else goes through asn1crypto.
    """
    fast = _parse_query_fast(der)
    if fast is not None:
        return fast
    return parse_query_asn1(der)


def parse_query_asn1(der: bytes) -> TimestampQuery:
    """:func:`parse_query` entirely through asn1crypto's ``TimeStampReq`` (the reference)."""
    if not der:
        raise _rejected_format("the request body is empty; a DER TimeStampReq is required")
    try:
        req = tsp.TimeStampReq.load(der, strict=True)
        version = req["version"].native
        imprint = req["message_imprint"]
        alg = imprint["hash_algorithm"]
        oid = alg["algorithm"].dotted
        params = alg["parameters"]
        digest = imprint["hashed_message"].native
        policy = req["req_policy"].dotted if req["req_policy"].native is not None else None
        nonce = req["nonce"].native
        cert_req = bool(req["cert_req"].native)
        has_extensions = req["extensions"].native is not None
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        raise _rejected_format(f"the request is not a DER TimeStampReq: {exc}") from exc
    if version != "v1":
        raise _rejected_format(f"unsupported TimeStampReq version {version!r}; expected v1")
    if isinstance(params, core.Null):
        params_null = True
    elif isinstance(params, core.Void):
        params_null = False
    else:
        raise TimestampRejected(
            "the hash AlgorithmIdentifier must have absent or NULL parameters (RFC 5754 §2)",
            failure=BAD_ALG,
        )
    algorithm = _hash_for(digest, _HASH_BY_OID.get(oid), oid)
    if has_extensions:
        raise TimestampRejected(
            "request extensions are not supported", failure=UNACCEPTED_EXTENSION
        )
    return TimestampQuery(
        hash_algorithm=algorithm,
        digest=digest,
        nonce=_check_nonce(nonce) if nonce is not None else None,
        cert_req=cert_req,
        policy=policy,
        imprint_params_null=params_null,
    )


def query_from_json(obj: Mapping[str, Any]) -> TimestampQuery:
    """Validate the JSON request of sigstore/timestamp-authority (``openapi.yaml`` JsonRequest).

    ``{"artifactHash": b64 digest, "hashAlgorithm": "sha256", "certificates": bool,
    "nonce": int, "tsaPolicyOID": "1.2.3"}``; sigstore-js sends only the first two.
    """
    artifact_hash = obj.get("artifactHash")
    if not isinstance(artifact_hash, str) or not artifact_hash:
        raise InvalidInput("artifactHash is required: the base64 digest to timestamp")
    try:
        digest = base64.b64decode(artifact_hash, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"artifactHash is not valid base64: {exc}") from exc
    name = obj.get("hashAlgorithm")
    if not isinstance(name, str):
        raise InvalidInput("hashAlgorithm is required (sha256, sha384 or sha512)")
    algorithm = _hash_for(digest, HASH_ALGORITHMS.get(name.lower()), name)
    certificates = obj.get("certificates", False)
    if not isinstance(certificates, bool):
        raise InvalidInput("certificates must be a boolean")
    nonce = obj.get("nonce")
    if nonce is not None and (isinstance(nonce, bool) or not isinstance(nonce, int)):
        raise InvalidInput("nonce must be an integer")
    policy = obj.get("tsaPolicyOID")
    if policy is not None:
        if not isinstance(policy, str) or not policy:
            raise InvalidInput("tsaPolicyOID must be a dotted object identifier string")
        try:
            policy = core.ObjectIdentifier(policy).dotted
        except ValueError as exc:
            raise InvalidInput(f"tsaPolicyOID {shown(policy)} is not an object identifier") from exc
    return TimestampQuery(
        hash_algorithm=algorithm,
        digest=digest,
        nonce=_check_nonce(nonce) if nonce is not None else None,
        cert_req=certificates,
        policy=policy,
    )


def encode_query(
    digest: bytes,
    hash_name: str = "sha256",
    *,
    nonce: int | None = None,
    cert_req: bool = False,
    policy: str | None = None,
) -> bytes:
    """Encode a DER ``TimeStampReq`` (RFC 3161 §2.4.1), as a client would send it."""
    fields: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": hash_name},
            "hashed_message": digest,
        },
        "cert_req": cert_req,
    }
    if policy is not None:
        fields["req_policy"] = policy
    if nonce is not None:
        fields["nonce"] = nonce
    return bytes(tsp.TimeStampReq(fields).dump())


# --------------------------------------------------------------------------------------------
# Responses.


def rejection_response(failure: str, message: str) -> bytes:
    """A ``TimeStampResp`` with status rejection and one PKIFailureInfo bit (RFC 3161 §2.4.2).

    ``failure`` is an asn1crypto PKIFailureInfo name (``bad_alg``, ``bad_request``, …).
    """
    status = tsp.PKIStatusInfo(
        {
            "status": "rejection",
            "status_string": [message[:512]],
            "fail_info": {failure},
        }
    )
    # asn1crypto declares timeStampToken mandatory, but RFC 3161 §2.4.2 omits it on failure.
    return der_tlv(0x30, bytes(status.dump()))


@dataclass(frozen=True)
class _SignatureProfile:
    """How a key signs CMS SignedAttributes (RFC 5652 §5.4, RFC 5753 §2.1.1, RFC 4056)."""

    digest_name: str  # the SignerInfo digestAlgorithm (also hashes TSTInfo for messageDigest)
    signature_algorithm: str  # asn1crypto SignedDigestAlgorithm name


def _signature_profile(key: PublicKey) -> _SignatureProfile:
    if isinstance(key, ec.EllipticCurvePublicKey):
        name = hash_for_curve(key.curve).name  # KeySigner contract: ECDSA hash by curve
        return _SignatureProfile(name, f"{name}_ecdsa")
    if isinstance(key, rsa.RSAPublicKey):
        return _SignatureProfile("sha256", "sha256_rsa")  # KeySigner contract: PKCS#1 v1.5 SHA-256
    # Ed25519 (RFC 8419) is refused: openssl ts and rfc3161-client verify through OpenSSL's
    # PKCS#7 code, which cannot check Ed25519 signer infos, so such tokens would never verify.
    raise ConfigError(
        f"unsupported TSA key type {type(key).__name__}: use ECDSA (P-256/P-384/P-521) or RSA"
    )


def _ess_signing_certificate_v2(leaf: x509.Certificate) -> cms.CMSAttribute:
    """The ESS signing-certificate-v2 attribute binding the token to the TSA leaf (RFC 5035 §3).

    Required by RFC 3161 §2.4.2 (as updated by RFC 5816): ESSCertIDv2 with SHA-256 (the DEFAULT,
    so the hashAlgorithm field is omitted) and the issuer/serial of the certificate.
    """
    cert_id = tsp.ESSCertIDv2(
        {
            "cert_hash": hashlib.sha256(leaf.dump()).digest(),
            "issuer_serial": {
                "issuer": [x509.GeneralName(name="directory_name", value=leaf.issuer)],
                "serial_number": leaf.serial_number,
            },
        }
    )
    value = tsp.SigningCertificateV2({"certs": [cert_id]})
    return cms.CMSAttribute({"type": "signing_certificate_v2", "values": [value]})


def _attribute(kind: str, value: object) -> bytes:
    return bytes(cms.CMSAttribute({"type": kind, "values": [value]}).dump())


def generalized_time(seconds: int) -> bytes:
    """DER GeneralizedTime ``YYYYMMDDHHMMSSZ`` (X.690 §11.7) for a whole number of Unix seconds.

    Whole seconds, no fraction: sigstore-js parses only ``.sss`` fractions while DER forbids
    trailing zeros, so the accuracy field (1 s, as in the Go TSA) carries the precision instead;
    the TSA rounds to the nearest second and bounds its clock drift so that the claim holds.
    """
    text = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(seconds)).encode()
    return b"\x18" + der_length(len(text)) + text


class TokenBuilder:
    """Issues RFC 3161 ``TimeStampResp`` messages for one TSA key and certificate chain.

    ``chain`` is leaf first (the certificate of ``signer``), then intermediates, then the root.
    ``policies`` are the accepted policy OIDs; the first is used when a query names none.
    """

    def __init__(
        self,
        signer: KeySigner,
        chain: Sequence[cx509.Certificate],
        *,
        policies: Sequence[str] = (DEFAULT_POLICY_OID,),
        accuracy_seconds: int = 1,
        include_tsa_name: bool = True,
    ) -> None:
        if not chain:
            raise ConfigError("the TSA certificate chain is empty")
        if not policies:
            raise ConfigError("the TSA needs at least one policy OID")
        leaf_cx = chain[0]
        pub = signer.public_key()
        if spki_der(pub) != spki_der(leaf_cx.public_key()):
            raise ConfigError("the TSA signing key does not match the TSA leaf certificate")
        self._signer = signer
        leaf = x509.Certificate.load(leaf_cx.public_bytes(serialization.Encoding.DER))
        profile = _signature_profile(pub)
        self.digest_name = profile.digest_name
        self._hash = getattr(hashlib, profile.digest_name)

        self.policies: tuple[str, ...] = tuple(core.ObjectIdentifier(p).dotted for p in policies)
        self._policy_der = {p: bytes(core.ObjectIdentifier(p).dump()) for p in self.policies}
        self._accuracy_der = (
            tsp.Accuracy({"seconds": accuracy_seconds}).dump() if accuracy_seconds > 0 else b""
        )
        self._tsa_der = (
            der_tlv(0xA0, x509.GeneralName(name="directory_name", value=leaf.subject).dump())
            if include_tsa_name
            else b""
        )
        # messageImprint AlgorithmIdentifiers, with and without explicit NULL parameters.
        self._imprint_alg_der: dict[tuple[str, bool], bytes] = {}
        for name in HASH_ALGORITHMS:
            with_null = bytes(algos.DigestAlgorithm({"algorithm": name}).dump())  # NULL forced
            oid = bytes(core.ObjectIdentifier(HASH_ALGORITHMS[name].oid).dump())
            self._imprint_alg_der[(name, True)] = with_null
            self._imprint_alg_der[(name, False)] = der_tlv(0x30, oid)  # parameters absent

        # SignedData pieces that never change (RFC 5652 §5.1, §5.3).
        digest_alg = algos.DigestAlgorithm({"algorithm": profile.digest_name}).dump()
        sig_alg = algos.SignedDigestAlgorithm({"algorithm": profile.signature_algorithm}).dump()
        sid = cms.SignerIdentifier(
            name="issuer_and_serial_number",
            value={"issuer": leaf.issuer, "serial_number": leaf.serial_number},
        ).dump()
        self._signer_info_head = der_integer(1) + sid + digest_alg  # v1: issuerAndSerialNumber
        self._sig_alg_der = sig_alg
        self._signed_data_head = der_integer(3) + der_tlv(0x31, digest_alg)  # v3: §5.1
        self._tst_content_type = bytes(core.ObjectIdentifier("1.2.840.113549.1.9.16.1.4").dump())
        # RFC 3161 §2.4.2: with certReq the TSA's certificate MUST be included; we add the
        # intermediates too (never the root, which the verifier must already trust).
        certs = [c.public_bytes(serialization.Encoding.DER) for c in chain]
        included = certs[:-1] if len(certs) > 1 else certs
        self._certificates_der = der_tlv(0xA0, b"".join(set_order(included)))
        self._content_info_oid = bytes(core.ObjectIdentifier("1.2.840.113549.1.7.2").dump())
        self._granted = bytes(tsp.PKIStatusInfo({"status": "granted"}).dump())

        # SignedAttributes: contentType, messageDigest, signingCertificateV2, in DER SET OF order
        # (X.690 §11.6). Only the digest varies and the order is decided before its bytes, so the
        # order is found once with two extreme digests and the SET is split around the digest.
        size = self._hash().digest_size
        attrs_low = self._sorted_attrs(leaf, b"\x00" * size)
        attrs_high = self._sorted_attrs(leaf, b"\xff" * size)
        low, high = b"".join(attrs_low), b"".join(attrs_high)
        at = next(i for i in range(len(low)) if low[i] != high[i])
        self._attrs_before, self._attrs_after = low[:at], low[at + size :]
        if high != self._attrs_before + b"\xff" * size + self._attrs_after:
            raise ConfigError("signed attributes order depends on the digest")  # cannot happen
        self._attrs_len = der_length(len(low))

        self.leaf_der = certs[0]
        self.chain_der: tuple[bytes, ...] = tuple(certs)

    @staticmethod
    def _sorted_attrs(leaf: x509.Certificate, digest: bytes) -> list[bytes]:
        attrs = [
            _attribute("content_type", "tst_info"),
            _attribute("message_digest", digest),
            bytes(_ess_signing_certificate_v2(leaf).dump()),
        ]
        return sorted(attrs)  # DER SET OF: ascending octet order (X.690 §11.6)

    def resolve_policy(self, requested: str | None) -> str:
        """The policy to stamp under: the requested one if accepted (RFC 3161 §2.4.1 reqPolicy)."""
        if requested is None:
            return self.policies[0]
        if requested not in self._policy_der:
            raise TimestampRejected(
                f"policy {requested} is not accepted by this TSA", failure=UNACCEPTED_POLICY
            )
        return requested

    def tst_info(
        self, query: TimestampQuery, *, serial: bytes, gen_time: bytes, policy: str
    ) -> bytes:
        """DER TSTInfo (RFC 3161 §2.4.2) given the encoded serial INTEGER and genTime."""
        alg = self._imprint_alg_der[(query.hash_algorithm.name, query.imprint_params_null)]
        imprint_body = alg + b"\x04" + der_length(len(query.digest)) + query.digest
        body = b"".join(
            (
                b"\x02\x01\x01",  # version v1
                self._policy_der[policy],
                b"\x30" + der_length(len(imprint_body)) + imprint_body,
                serial,
                gen_time,
                self._accuracy_der,
                der_integer(query.nonce) if query.nonce is not None else b"",
                self._tsa_der,
            )
        )
        return b"\x30" + der_length(len(body)) + body

    def issue(self, query: TimestampQuery, *, serial: bytes, gen_time: bytes) -> bytes:
        """A granted ``TimeStampResp`` carrying a signed token for ``query``.

        ``serial`` is the DER INTEGER serialNumber and ``gen_time`` the DER GeneralizedTime
        (see :func:`generalized_time`); the caller owns uniqueness and the clock.
        """
        policy = self.resolve_policy(query.policy)
        tst = self.tst_info(query, serial=serial, gen_time=gen_time, policy=policy)
        attrs = (
            self._attrs_before + self._hash(tst).digest() + self._attrs_after
        )  # RFC 5652 §5.4: the signature covers the DER SET OF the signed attributes
        signature = self._signer.sign(b"\x31" + self._attrs_len + attrs)
        signer_info = b"".join(
            (
                self._signer_info_head,
                b"\xa0",
                self._attrs_len,
                attrs,
                self._sig_alg_der,
                b"\x04",
                der_length(len(signature)),
                signature,
            )
        )
        octets = b"\x04" + der_length(len(tst)) + tst
        encap = self._tst_content_type + b"\xa0" + der_length(len(octets)) + octets
        signer_infos = b"\x30" + der_length(len(signer_info)) + signer_info
        signed_data_body = b"".join(
            (
                self._signed_data_head,
                b"\x30",
                der_length(len(encap)),
                encap,
                self._certificates_der if query.cert_req else b"",
                b"\x31",
                der_length(len(signer_infos)),
                signer_infos,
            )
        )
        signed_data = b"\x30" + der_length(len(signed_data_body)) + signed_data_body
        content = self._content_info_oid + b"\xa0" + der_length(len(signed_data)) + signed_data
        token = b"\x30" + der_length(len(content)) + content
        body = self._granted + token
        return b"\x30" + der_length(len(body)) + body


def imprint_of(data: bytes, hash_name: str = "sha256") -> bytes:
    """The messageImprint digest of ``data`` (Sigstore stamps the raw signature bytes, §8)."""
    digest: bytes = hashlib.new(HASH_ALGORITHMS[hash_name].name, data).digest()
    return digest
