"""Readable summaries of log entries: kind, artifact digest and the signing certificate.

Pure: canonical Rekor bodies and DER certificates in, plain data out. Nothing here is trusted
for being decoded: :attr:`CertificateInfo.trusted` says whether the certificate chains to a CA
of this instance (:class:`IssuedHere`); the pages mark
the identity of any other certificate as unverified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization

from keyless.keys import spki_der
from keyless.services.tlog.identities import TrustedIssuers
from keyless.services.tlog.search import MALFORMED_EXTENSIONS, keys_for_body

_FULCIO = "1.3.6.1.4.1.57264.1."
#: Fulcio's certificate extensions (docs/oid-info.md upstream): (arc, name, DER-encoded?)
CLAIMS: tuple[tuple[int, str, bool], ...] = (
    (1, "OIDC issuer (v1)", False),
    (2, "GitHub workflow trigger", False),
    (3, "GitHub workflow SHA", False),
    (4, "GitHub workflow name", False),
    (5, "GitHub workflow repository", False),
    (6, "GitHub workflow ref", False),
    (8, "OIDC issuer", True),
    (9, "Build signer URI", True),
    (10, "Build signer digest", True),
    (11, "Runner environment", True),
    (12, "Source repository URI", True),
    (13, "Source repository digest", True),
    (14, "Source repository ref", True),
    (15, "Source repository identifier", True),
    (16, "Source repository owner URI", True),
    (17, "Source repository owner identifier", True),
    (18, "Build config URI", True),
    (19, "Build config digest", True),
    (20, "Build trigger", True),
    (21, "Run invocation URI", True),
    (22, "Source repository visibility", True),
)


@dataclass(frozen=True)
class CertificateInfo:
    """What a page shows of a certificate."""

    subject_alternative_names: tuple[str, ...]
    oidc_issuer: str
    issuer_name: str
    not_before: str
    not_after: str
    sha256: str
    key_fingerprint: str
    claims: tuple[tuple[str, str], ...]
    trusted: bool
    pem: str


@dataclass(frozen=True)
class EntrySummary:
    """A Rekor entry as a results row and an entry page show it."""

    kind: str
    version: str
    digest: str
    certificates: tuple[CertificateInfo, ...] = ()
    public_keys: tuple[str, ...] = field(default=())
    body: str = ""

    @property
    def identity(self) -> str:
        first = self.certificates[0] if self.certificates else None
        return ", ".join(first.subject_alternative_names) if first else ""

    @property
    def issuer(self) -> str:
        return self.certificates[0].oidc_issuer if self.certificates else ""

    @property
    def trusted(self) -> bool:
        return bool(self.certificates) and self.certificates[0].trusted


def _der_utf8(raw: bytes) -> str:
    if len(raw) >= 2 and raw[0] == 0x0C:
        offset = 2 if raw[1] < 0x80 else 2 + (raw[1] & 0x7F)
        return raw[offset:].decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def _claims(cert: x509.Certificate) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    names = {f"{_FULCIO}{arc}": (name, der) for arc, name, der in CLAIMS}
    try:
        extensions = list(cert.extensions)
    except MALFORMED_EXTENSIONS:
        return out
    for ext in extensions:
        known = names.get(ext.oid.dotted_string)
        if known and isinstance(ext.value, x509.UnrecognizedExtension):
            name, der = known
            raw = ext.value.value
            out.append((name, _der_utf8(raw) if der else raw.decode("utf-8", "replace")))
    return out


def subject_alternative_names(cert: x509.Certificate) -> list[str]:
    """The e-mail and URI SANs of ``cert`` (none when the extension is missing or malformed)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, *MALFORMED_EXTENSIONS):
        return []
    return [*san.get_values_for_type(x509.RFC822Name),
            *san.get_values_for_type(x509.UniformResourceIdentifier)]


class IssuedHere:
    """Whether a certificate was issued by this instance's CA: it chains to one of its CA
    certificates (:class:`TrustedIssuers`), or — for the precertificates of the CT log, whose
    critical poison extension no path validation accepts — carries a valid signature of one."""

    def __init__(self, ca_certificates: Sequence[x509.Certificate]) -> None:
        self._trusted = TrustedIssuers(ca_certificates)
        self._cas = list(ca_certificates)

    def __call__(self, cert: x509.Certificate) -> bool:
        if self._trusted.vouches_for(cert):
            return True
        for ca in self._cas:
            if ca.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return True
        return False


def certificate_info(
    cert: x509.Certificate, issued_here: Callable[[x509.Certificate], bool] | None
) -> CertificateInfo:
    """A certificate's identity, validity, Fulcio claims and fingerprints."""
    claims = _claims(cert)
    issuer = next((v for k, v in claims if k == "OIDC issuer"), "") or next(
        (v for k, v in claims if k == "OIDC issuer (v1)"), "")
    try:
        issuer_name = cert.issuer.rfc4514_string()
    except ValueError:
        issuer_name = "(unreadable)"
    return CertificateInfo(
        subject_alternative_names=tuple(subject_alternative_names(cert)),
        oidc_issuer=issuer,
        issuer_name=issuer_name,
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        key_fingerprint=key_fingerprint(cert),
        claims=tuple((k, v) for k, v in claims if not k.startswith("OIDC issuer")),
        trusted=issued_here is not None and issued_here(cert),
        pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
    )


def key_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 (hex) of the certificate's DER SubjectPublicKeyInfo."""
    try:
        return hashlib.sha256(spki_der(cert.public_key())).hexdigest()
    except (ValueError, TypeError):
        return ""


def _verifier_ders(entry: dict[str, Any]) -> list[bytes]:
    """Every verifier (PEM or DER certificate or key) named in a canonical body, as bytes."""
    kind, version, spec = entry["kind"], entry["apiVersion"], entry["spec"]
    if (kind, version) == ("hashedrekord", "0.0.1"):
        return [base64.b64decode(spec["signature"]["publicKey"]["content"])]
    if (kind, version) == ("hashedrekord", "0.0.2"):
        return [_v2_verifier(spec["hashedRekordV002"]["signature"]["verifier"])]
    if (kind, version) == ("dsse", "0.0.1"):
        return [base64.b64decode(s["verifier"]) for s in spec["signatures"]]
    if (kind, version) == ("dsse", "0.0.2"):
        return [_v2_verifier(s["verifier"]) for s in spec["dsseV002"]["signatures"]]
    if (kind, version) == ("intoto", "0.0.2"):
        return [base64.b64decode(s["publicKey"])
                for s in spec["content"]["envelope"]["signatures"]]
    return []


def _v2_verifier(verifier: dict[str, Any]) -> bytes:
    if "x509Certificate" in verifier:
        return base64.b64decode(verifier["x509Certificate"]["rawBytes"])
    return base64.b64decode(verifier["publicKey"]["rawBytes"])


def load_certificate(data: bytes) -> x509.Certificate | None:
    """A PEM or DER certificate, or ``None`` if ``data`` is none."""
    try:
        if data.lstrip().startswith(b"-----BEGIN CERTIFICATE"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        return None


def summarize(
    body: bytes, issued_here: Callable[[x509.Certificate], bool] | None
) -> EntrySummary:
    """The summary of a canonical Rekor body (a placeholder or unknown body gives kind ``?``)."""
    try:
        entry = json.loads(body)
        kind, version = str(entry["kind"]), str(entry["apiVersion"])
    except (ValueError, KeyError, TypeError, RecursionError):
        return EntrySummary("placeholder", "", "", body=body.decode("utf-8", "replace"))
    digests = [k.removeprefix("digest:") for k in keys_for_body(body) if k.startswith("digest:")]
    certificates: list[CertificateInfo] = []
    keys: list[str] = []
    try:
        verifiers = _verifier_ders(entry)
    except (KeyError, TypeError, ValueError, binascii.Error):
        verifiers = []
    for data in verifiers:
        cert = load_certificate(data)
        if cert is not None:
            certificates.append(certificate_info(cert, issued_here))
        else:
            keys.append(data.decode("ascii", "replace") if data.startswith(b"-----")
                        else base64.b64encode(data).decode())
    pretty = json.dumps(entry, indent=2, sort_keys=True)
    return EntrySummary(kind, version, digests[0] if digests else "", tuple(certificates),
                        tuple(keys), pretty)
