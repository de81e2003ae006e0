"""The Fulcio certificate profile: CA certificates, precertificates and code-signing leaves.

Everything here follows protocols.md §1.4 (Fulcio ``pkg/ca/common.go MakeX509``,
``docs/certificate-specification.md``) and the client requirements of interop.md §5 items 6 and 7:

* leaf: v3, random positive serial, **empty subject**, 10-minute validity, KeyUsage
  digitalSignature (critical), EKU codeSigning, SKI, AKI, **critical** SAN (email, URI or the
  username OtherName 1.3.6.1.4.1.57264.1.7), then the non-critical Sigstore extensions
  1.3.6.1.4.1.57264.1.* (issuer in both .1 raw and .8 UTF8String), then the SCT list;
* CA certificates: critical BasicConstraints CA:TRUE (sigstore-python's ``cert_is_ca`` rejects a
  non-critical one), critical KeyUsage keyCertSign + cRLSign, SKI/AKI, intermediate EKU codeSigning
  and pathlen 0.

The precertificate and the final certificate are built from the same :class:`LeafProfile` so that
their TBS differ only by the poison / SCT-list extension (RFC 6962 §3.1). Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keyless.errors import ConfigError, InvalidInput
from keyless.formats.der import encode_length, encode_oid, encode_tlv
from keyless.formats.sct import POISON_OID, SCT_LIST_OID
from keyless.keys import InMemorySigner, KeySigner, PublicKey, signature_hash

#: Fulcio's OID arc (``pkg/certificate/extensions.go``, ``docs/oid-info.md``).
SIGSTORE_OID_ARC = "1.3.6.1.4.1.57264.1"
#: The OtherName type-id of username identities (protocols.md §1.4).
USERNAME_OTHERNAME_OID = x509.ObjectIdentifier(SIGSTORE_OID_ARC + ".7")

#: Leaf validity (protocols.md §1.4: NotAfter = NotBefore + 10 minutes).
LEAF_VALIDITY = dt.timedelta(minutes=10)


def _key_usage(*, sign_data: bool, sign_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign_data,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certificates,
        crl_sign=sign_certificates,
        encipher_only=False,
        decipher_only=False,
    )


#: keyUsage of a certificate that signs data (code-signing and TSA leaves): digitalSignature only
SIGNING_KEY_USAGE = _key_usage(sign_data=True, sign_certificates=False)
#: keyUsage of a CA certificate: keyCertSign and cRLSign only
CA_KEY_USAGE = _key_usage(sign_data=False, sign_certificates=True)

SanType = Literal["email", "uri", "username"]


def sigstore_oid(n: int) -> x509.ObjectIdentifier:
    """The OID 1.3.6.1.4.1.57264.1.``n``."""
    return x509.ObjectIdentifier(f"{SIGSTORE_OID_ARC}.{n}")


#: Extensions whose value is the raw UTF-8 bytes with no DER tag (deprecated .1 to .6).
RAW_EXTENSIONS = frozenset(range(1, 7))


def random_serial() -> int:
    """A random positive serial of at most 20 octets (RFC 5280 §4.1.2.2; 159 bits of entropy)."""
    return secrets.randbits(159) | 1


@dataclass(frozen=True)
class LeafProfile:
    """Everything that varies between leaves; the fixed parts come from the profile itself.

    ``extensions`` maps the Sigstore OID number N (1.3.6.1.4.1.57264.1.N) to its string value in
    emission order; :func:`sigstore_extension_value` chooses raw or UTF8String by N.
    """

    public_key: PublicKey
    san: str
    san_type: SanType
    not_before: dt.datetime
    extensions: tuple[tuple[int, str], ...]
    serial_number: int = field(default_factory=random_serial)

    @property
    def not_after(self) -> dt.datetime:
        return self.not_before + LEAF_VALIDITY


def der_utf8string(value: str) -> bytes:
    """DER UTF8String (tag 0x0C) of ``value`` (X.690 §8.23)."""
    data = value.encode()
    return bytes([0x0C]) + encode_length(len(data)) + data


def sigstore_extension_value(n: int, value: str) -> bytes:
    """The extnValue content for 1.3.6.1.4.1.57264.1.``n`` (protocols.md §1.4 encoding rules)."""
    return value.encode() if n in RAW_EXTENSIONS else der_utf8string(value)


def sigstore_extensions(
    issuer_type: str, issuer: str, claims: Mapping[str, Any]
) -> tuple[tuple[int, str], ...]:
    """The Sigstore extensions a token of ``issuer_type`` supports, in Fulcio's order.

    Every type gets the issuer as .1 (raw; read by sigstore-python) and .8 (UTF8String; read by
    sigstore-js and the client spec) — interop.md §5 item 7 — and .24 Token Subject when ``sub``
    is present. GitHub Actions and GitLab CI tokens add the workflow claims
    (``pkg/identity/github/principal.go``, ``pkg/identity/gitlabcom/principal.go``).
    """
    out: list[tuple[int, str]] = [(1, issuer)]
    if issuer_type == "github-workflow":
        out += _github_extensions(issuer, claims)
    else:
        out.append((8, issuer))
        if issuer_type == "gitlab-pipeline":
            out += _gitlab_extensions(issuer, claims)
    sub = claims.get("sub")
    if isinstance(sub, str) and sub:
        out.append((24, sub))
    return tuple(out)


def _github_extensions(issuer: str, claims: Mapping[str, Any]) -> list[tuple[int, str]]:
    c = {k: str(v) for k, v in claims.items() if isinstance(v, str | int)}
    gh = "https://github.com/"
    out = [
        (2, c["event_name"]),
        (3, c["sha"]),
        (4, c["workflow"]),
        (5, c["repository"]),
        (6, c["ref"]),
        (8, issuer),
        (9, gh + c["job_workflow_ref"]),
        (10, c["job_workflow_sha"]),
        (11, c["runner_environment"]),
        (12, gh + c["repository"]),
        (13, c["sha"]),
        (14, c["ref"]),
        (15, c["repository_id"]),
        (16, gh + c["repository_owner"]),
        (17, c["repository_owner_id"]),
        (18, gh + c["workflow_ref"]),
        (19, c["workflow_sha"]),
        (20, c["event_name"]),
        (
            21,
            f"{gh}{c['repository']}/actions/runs/{quote(c['run_id'])}"
            f"/attempts/{quote(c['run_attempt'])}",
        ),
    ]
    if c.get("repository_visibility"):
        out.append((22, c["repository_visibility"]))
    if c.get("environment"):
        out.append((23, c["environment"]))
    return out


def _gitlab_extensions(issuer: str, claims: Mapping[str, Any]) -> list[tuple[int, str]]:
    c = {k: str(v) for k, v in claims.items() if isinstance(v, str | int)}
    base = issuer.rstrip("/") + "/"
    ref_prefix = "refs/tags/" if c.get("ref_type") == "tag" else "refs/heads/"
    config_uri = "https://" + c["ci_config_ref_uri"]
    repo_uri = base + c["project_path"]
    out = [
        (9, config_uri),
        (11, c["runner_environment"]),
        (12, repo_uri),
        (13, c["sha"]),
        (14, ref_prefix + c["ref"]),
        (15, c["project_id"]),
        (16, base + c["namespace_path"]),
        (17, c["namespace_id"]),
        (18, config_uri),
        (20, c["pipeline_source"]),
        (21, f"{repo_uri}/-/jobs/{c['job_id']}"),
    ]
    if c.get("ci_config_sha"):
        out.insert(1, (10, c["ci_config_sha"]))
        out.insert(10, (19, c["ci_config_sha"]))
    if c.get("project_visibility"):
        out.append((22, c["project_visibility"]))
    if c.get("environment"):
        out.append((23, c["environment"]))
    return out


def _san(profile: LeafProfile) -> x509.SubjectAlternativeName:
    name: x509.GeneralName
    if profile.san_type == "email":
        name = x509.RFC822Name(profile.san)
    elif profile.san_type == "uri":
        name = x509.UniformResourceIdentifier(profile.san)
    elif profile.san_type == "username":
        name = x509.OtherName(USERNAME_OTHERNAME_OID, der_utf8string(profile.san))
    else:
        raise InvalidInput(f"unknown SAN type {profile.san_type!r}")
    return x509.SubjectAlternativeName([name])


def leaf_builder(profile: LeafProfile, issuer: x509.Certificate) -> x509.CertificateBuilder:
    """The leaf's TBS fields and extensions up to (excluding) poison / SCT list, in Fulcio order."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.subject)
        .public_key(profile.public_key)
        .serial_number(profile.serial_number)
        .not_valid_before(profile.not_before)
        .not_valid_after(profile.not_after)
        .add_extension(
            SIGNING_KEY_USAGE,
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(profile.public_key), False)
        .add_extension(_aki(issuer), critical=False)
        .add_extension(_san(profile), critical=True)
    )
    for n, value in profile.extensions:
        ext = x509.UnrecognizedExtension(sigstore_oid(n), sigstore_extension_value(n, value))
        builder = builder.add_extension(ext, critical=False)
    return builder


def build_precertificate(
    profile: LeafProfile,
    issuer: x509.Certificate,
    signer: KeySigner,
    base: x509.CertificateBuilder | None = None,
) -> x509.Certificate:
    """The precertificate: the leaf plus the critical poison extension (RFC 6962 §3.1).

    ``base`` is :func:`leaf_builder`'s result when the caller already has it (builders are
    immutable, so one base serves the precertificate and the final certificate).
    """
    poison = x509.UnrecognizedExtension(x509.ObjectIdentifier(POISON_OID), b"\x05\x00")
    builder = (base or leaf_builder(profile, issuer)).add_extension(poison, critical=True)
    return sign_builder(builder, signer)


def build_final_certificate(
    profile: LeafProfile,
    issuer: x509.Certificate,
    signer: KeySigner,
    sct_list_extension: bytes,
    base: x509.CertificateBuilder | None = None,
) -> x509.Certificate:
    """The final leaf: the precert's TBS minus poison plus the SCT list, last (RFC 6962 §3.3).

    ``sct_list_extension`` is the DER OCTET STRING from
    :func:`keyless.formats.sct.encode_sct_list_extension`.
    """
    sct_ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(SCT_LIST_OID), sct_list_extension)
    builder = (base or leaf_builder(profile, issuer)).add_extension(sct_ext, critical=False)
    return sign_builder(builder, signer)


@functools.lru_cache(maxsize=16)  # the few issuing certificates, each read once
def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.public_key()  # type: ignore[arg-type]
        )
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def ca_name(organization: str, common_name: str) -> x509.Name:
    """``O=…, CN=…`` as in Fulcio's ``O=sigstore.dev, CN=sigstore-intermediate``."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def build_ca_certificate(
    *,
    subject: x509.Name,
    public_key: PublicKey,
    issuer: x509.Certificate | None,
    signer: KeySigner,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """A root (``issuer=None``, self-signed) or an intermediate (pathlen 0, EKU codeSigning).

    Follows Fulcio's ``docs/certificate-specification.md`` CA requirements (protocols.md §1.4).
    """
    intermediate = issuer is not None
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(public_key)
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            CA_KEY_USAGE,
            critical=True,
        )
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=0 if intermediate else 1), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(_aki(issuer), critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key),
            critical=False,
        )
    return sign_builder(builder, signer)


_STAND_INS: dict[str, Any] = {}


def _stand_in_key(public_key: PublicKey) -> Any:
    """A throw-away private key of the same type, used only to let the builder lay out the TBS."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        kind = "ec-" + public_key.curve.name
        if kind not in _STAND_INS:
            _STAND_INS[kind] = ec.generate_private_key(public_key.curve)
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        kind = "ed25519"
        if kind not in _STAND_INS:
            _STAND_INS[kind] = ed25519.Ed25519PrivateKey.generate()
    elif isinstance(public_key, rsa.RSAPublicKey):
        kind = "rsa-2048"
        if kind not in _STAND_INS:
            _STAND_INS[kind] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ConfigError(f"unsupported CA key type {type(public_key).__name__}")
    return _STAND_INS[kind]


def sign_builder(builder: x509.CertificateBuilder, signer: KeySigner) -> x509.Certificate:
    """Sign a certificate with any :class:`KeySigner`, including keys that never leave an HSM.

    In-process keys sign through ``cryptography`` directly. Other signers (PKCS#11) get the TBS
    laid out by the builder with a stand-in key of the same algorithm (so the TBS names the right
    signature algorithm), sign those exact bytes, and the certificate is assembled as
    ``SEQUENCE { tbs, algorithm, BIT STRING signature }`` (RFC 5280 §4.1).
    """
    public_key = signer.public_key()
    algorithm = signature_hash(public_key)
    if isinstance(signer, InMemorySigner):
        return builder.sign(signer.private_key, algorithm)
    template = builder.sign(_stand_in_key(public_key), algorithm)
    tbs = template.tbs_certificate_bytes
    signature = signer.sign(tbs)
    algorithm_der = _signature_algorithm_der(template)
    bit_string = b"\x03" + encode_length(len(signature) + 1) + b"\x00" + signature
    body = tbs + algorithm_der + bit_string
    return x509.load_der_x509_certificate(b"\x30" + encode_length(len(body)) + body)


def _signature_algorithm_der(cert: x509.Certificate) -> bytes:
    """The outer ``signatureAlgorithm`` AlgorithmIdentifier, copied from a template certificate."""
    from asn1crypto import x509 as asn1_x509

    parsed = asn1_x509.Certificate.load(cert.public_bytes(_der()))
    return bytes(parsed["signature_algorithm"].dump())


def strip_extension(tbs_der: bytes, oid: str) -> bytes:
    """A TBSCertificate with one extension removed; every other byte is kept as it was.

    Used by the CT log to turn a submitted precertificate's TBS into the ``precert_entry`` TBS
    (RFC 6962 §3.2: "the TBSCertificate … with the poison extension removed"). Works on the DER
    directly (X.690 §8.1): only the lengths of the enclosing ``extensions`` SEQUENCE, its ``[3]``
    wrapper and the TBS SEQUENCE change.
    """
    return _rewrite_extensions(tbs_der, oid, b"")


def _rewrite_extensions(tbs_der: bytes, oid: str, append: bytes) -> bytes:
    """Remove extension ``oid`` from a DER TBSCertificate and append the DER ``append``."""
    target = encode_tlv(0x06, encode_oid(oid))
    try:
        tag, body_start, body_end = _der_header(tbs_der, 0)
        if tag != 0x30 or body_end != len(tbs_der):
            raise ValueError("TBSCertificate is not one DER SEQUENCE")
        pos = body_start
        while pos < body_end:
            tag, start, end = _der_header(tbs_der, pos)
            if tag == 0xA3:
                seq_tag, ext_start, ext_end = _der_header(tbs_der, start)
                if seq_tag != 0x30 or ext_end != end:
                    raise ValueError("extensions are not a SEQUENCE")
                kept, found, cursor = [], False, ext_start
                while cursor < ext_end:
                    _, e_start, e_end = _der_header(tbs_der, cursor)
                    _, _, o_end = _der_header(tbs_der, e_start)
                    if tbs_der[e_start:o_end] == target:
                        found = True
                    else:
                        kept.append(tbs_der[cursor:e_end])
                    cursor = e_end
                if not found:
                    raise InvalidInput(f"certificate has no extension {oid}")
                if append:
                    kept.append(append)
                extensions = encode_tlv(0x30, b"".join(kept))
                wrapped = encode_tlv(0xA3, extensions) if kept else b""
                body = tbs_der[body_start:pos] + wrapped + tbs_der[end:body_end]
                return encode_tlv(0x30, body)
            pos = end
    except (ValueError, IndexError) as exc:
        raise InvalidInput(f"cannot parse TBSCertificate: {exc}") from exc
    raise InvalidInput(f"certificate has no extension {oid}")


def finalize_precertificate(
    precert: x509.Certificate, signer: KeySigner, sct_list_extension: bytes
) -> x509.Certificate:
    """The final certificate of a stored precertificate: poison out, SCT list in, re-signed.

    Used when the CT log already holds the precertificate (an idempotent retry), so the final
    certificate must match *that* precertificate (RFC 6962 §3.1) rather than a new profile.
    """
    sct_ext = encode_tlv(
        0x30, encode_tlv(0x06, encode_oid(SCT_LIST_OID)) + encode_tlv(0x04, sct_list_extension)
    )
    tbs = _rewrite_extensions(precert.tbs_certificate_bytes, POISON_OID, sct_ext)
    signature = signer.sign(tbs)
    bit_string = encode_tlv(0x03, b"\x00" + signature)
    body = tbs + _signature_algorithm_der(precert) + bit_string
    return x509.load_der_x509_certificate(encode_tlv(0x30, body))


def _der_header(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER TLV at ``pos`` (single-byte tags only)."""
    tag = data[pos]
    first = data[pos + 1]
    if first < 0x80:
        start, length = pos + 2, first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        start = pos + 2 + count
        length = int.from_bytes(data[pos + 2 : start], "big")
    end = start + length
    if end > len(data):
        raise ValueError("DER value runs past the end")
    return tag, start, end


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def certificate_pem(cert: x509.Certificate) -> str:
    """Standard PEM: 64-column base64 lines, ``\\n`` endings, trailing newline (interop.md §5.3)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM).decode()


def chain_pem(certs: Sequence[x509.Certificate]) -> list[str]:
    """Each certificate of ``certs`` as standard PEM (leaf first)."""
    return [certificate_pem(c) for c in certs]
