"""Validating a chain submitted to ``add-chain`` / ``add-pre-chain`` (RFC 6962 §3.1, §4.1, §4.2).

A CT log only logs chains that end in one of its accepted roots; otherwise anyone could make it
vouch (with an SCT) for a certificate minted by a key that may not issue certificates — e.g. a
precertificate for ``bob@…`` signed with alice's short-lived leaf key. So every certificate above
the leaf must be a CA (basic constraints CA:TRUE, key usage keyCertSign, path length respected),
valid at the time of submission, and each link's signature must verify.

Two layers, both failing closed:

* explicit link and CA checks, so the 400 names the offending ``chain[i]`` and the rule;
* ``cryptography.x509.verification`` (RFC 5280 path validation: name chaining, name
  constraints, unknown critical extensions, signature algorithms, path length) over exactly the
  submitted path. It is used with two CT-specific adjustments, which is why it does not stand
  alone: the leaf may carry the critical precertificate poison (an extension a normal verifier
  rejects) and any EKU (Sigstore leaves are codeSigning); and the leaf may be expired — RFC 6962
  logs record certificates whatever their age, and Sigstore leaves live ten minutes — so the path
  is validated at a moment inside the leaf's validity, while the CA certificates are separately
  required to be valid *now*.

RFC 6962 §3.1's precertificate signing certificate (a CA-issued certificate with EKU
1.3.6.1.4.1.11129.2.4.4 that signs precertificates on the CA's behalf) is refused: this log's CA
signs precertificates directly, and accepting one would need the TBS rewriting of §3.2.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from keyless.errors import InvalidInput

#: A precertificate signing certificate's EKU (RFC 6962 §3.1) — refused, see the module doc.
PRECERT_SIGNING_EKU = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.4")


def validate_chain(
    certs: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    now: dt.datetime,
) -> list[x509.Certificate]:
    """The submitted chain (leaf first) completed with its root, or :class:`InvalidInput`.

    The root may be omitted when the last certificate is issued directly by an accepted root.
    """
    chain = list(certs)
    for i in range(len(chain) - 1):
        if not issued_by(chain[i], chain[i + 1]):
            raise InvalidInput(f"chain[{i}] is not signed by chain[{i + 1}]")
    root_ders = {_der(r) for r in roots}
    if _der(chain[-1]) not in root_ders:
        root = next((r for r in roots if issued_by(chain[-1], r)), None)
        if root is None:
            raise InvalidInput("chain does not end in a root accepted by this log (get-roots)")
        chain.append(root)
    if len(chain) < 2:
        raise InvalidInput("a root certificate itself cannot be logged")
    if PRECERT_SIGNING_EKU in _ekus(chain[1]):
        raise InvalidInput("precertificate signing certificates are not supported")
    for i in range(1, len(chain)):
        _check_ca(chain[i], i, now)
    _validate_path(chain, now)
    return chain


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s name and key issued ``cert`` (the signature verifies)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_ca(cert: x509.Certificate, i: int, now: dt.datetime) -> None:
    """``chain[i]`` (i >= 1) signs certificates: a CA, allowed keyCertSign, valid now, and its
    path length admits the ``i - 1`` CA certificates below it."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise InvalidInput(
            f"chain[{i}] is not a CA certificate (basic constraints CA:TRUE missing), so it "
            f"cannot issue chain[{i - 1}]"
        )
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not usage.key_cert_sign:
        raise InvalidInput(f"chain[{i}] is not allowed to sign certificates (no keyCertSign)")
    if constraints.path_length is not None and i - 1 > constraints.path_length:
        raise InvalidInput(
            f"chain[{i}] allows {constraints.path_length} CA certificate(s) below it, the chain "
            f"has {i - 1}"
        )
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        raise InvalidInput(
            f"chain[{i}] is not valid now (valid from {cert.not_valid_before_utc:{fmt}} "
            f"to {cert.not_valid_after_utc:{fmt}})"
        )


def _validate_path(chain: list[x509.Certificate], now: dt.datetime) -> None:
    """RFC 5280 path validation of exactly ``chain`` (see the module doc for the adjustments)."""
    leaf = chain[0]
    at = min(max(now, leaf.not_valid_before_utc), leaf.not_valid_after_utc)
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None  # Sigstore CAs are codeSigning
    )
    ee_policy = ExtensionPolicy.permit_all().may_be_present(
        x509.PrecertPoison, Criticality.CRITICAL, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store([chain[-1]]))
        .time(at)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(leaf, chain[1:-1])
    except VerificationError as exc:
        raise InvalidInput(f"chain does not validate (RFC 5280): {exc}") from exc
    if [_der(c) for c in verified.chain] != [_der(c) for c in chain]:
        raise InvalidInput("chain must list the path leaf first, each certificate's issuer next")


def _ekus(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return []


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)
