"""add-chain / add-pre-chain validate the submitted chain (issue #13 defect 5).

The log must never hand out an SCT for a certificate that was not issued by a CA under one of
its roots: every certificate above the leaf is a CA (CA:TRUE, keyCertSign, path length), valid at
submission, each link verifies, and RFC 5280 path validation passes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keyless.errors import InvalidInput
from keyless.keys import InMemorySigner
from keyless.services.ctlog import CTLogService
from memory_log import MemoryKeyValue, MemoryLogEngine

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
UNKNOWN_CRITICAL = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1")


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def make_cert(
    name: str,
    issuer: Issued | None,
    *,
    ca: bool | None,
    path_length: int | None = None,
    key_cert_sign: bool = True,
    not_before: dt.datetime = NOW - DAY,
    not_after: dt.datetime = NOW + 30 * DAY,
    precert: bool = False,
    extra_critical: bool = False,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]) if ca else x509.Name([])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    signer = issuer.key if issuer else key
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca, path_length if ca else None),
                                        True)
    usage = dict.fromkeys(
        ["content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
         "encipher_only", "decipher_only"], False,
    )
    builder = builder.add_extension(
        x509.KeyUsage(digital_signature=not ca, key_cert_sign=bool(ca) and key_cert_sign,
                      crl_sign=bool(ca), **usage), True,
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(f"{name}@example.com")]), True
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
    if precert:
        builder = builder.add_extension(x509.PrecertPoison(), True)
    if extra_critical:
        builder = builder.add_extension(x509.UnrecognizedExtension(UNKNOWN_CRITICAL, b"\x05\x00"),
                                        True)
    return Issued(builder.sign(signer, hashes.SHA256()), key)


@pytest.fixture
def root() -> Issued:
    return make_cert("root", None, ca=True, not_before=NOW - 365 * DAY,
                     not_after=NOW + 3650 * DAY)


@pytest.fixture
def inter(root: Issued) -> Issued:
    return make_cert("intermediate", root, ca=True, path_length=0)


@pytest.fixture
async def log(root: Issued) -> AsyncIterator[CTLogService]:
    engine = MemoryLogEngine(seed=1)
    service = CTLogService(
        engine=engine, kv=MemoryKeyValue(), signer=InMemorySigner(ec.generate_private_key(
            ec.SECP256R1())), roots=[root.cert], origin="ct.test", clock=NOW.timestamp,
    )
    yield service
    await engine.close()


async def test_a_good_chain_is_logged_with_or_without_its_root(
    log: CTLogService, root: Issued, inter: Issued
) -> None:
    pre = make_cert("alice", inter, ca=False, precert=True)
    await log.add_chain([pre.der(), inter.der(), root.der()], precert=True)
    leaf = make_cert("alice", inter, ca=False)
    await log.add_chain([leaf.der(), inter.der()], precert=False)


@pytest.mark.parametrize("precert", [True, False])
async def test_a_leaf_key_cannot_issue(
    log: CTLogService, root: Issued, inter: Issued, precert: bool
) -> None:
    """The reported attack: bob's certificate signed with alice's (leaf) key."""
    alice = make_cert("alice", inter, ca=False)
    forged = make_cert("bob", alice, ca=False, precert=precert)
    with pytest.raises(InvalidInput, match=r"chain\[1\] is not a CA certificate"):
        await log.add_chain([forged.der(), alice.der(), inter.der()], precert=precert)
    no_constraints = make_cert("carol", inter, ca=None)  # no basic constraints at all
    forged = make_cert("bob", no_constraints, ca=False, precert=precert)
    with pytest.raises(InvalidInput, match=r"chain\[1\] is not a CA certificate"):
        await log.add_chain([forged.der(), no_constraints.der(), inter.der()], precert=precert)


async def test_a_ca_without_key_cert_sign_cannot_issue(
    log: CTLogService, root: Issued
) -> None:
    inter = make_cert("crl-only", root, ca=True, key_cert_sign=False)
    leaf = make_cert("alice", inter, ca=False, precert=True)
    with pytest.raises(InvalidInput, match=r"chain\[1\] is not allowed to sign certificates"):
        await log.add_chain([leaf.der(), inter.der()], precert=True)


async def test_path_length_is_respected(log: CTLogService, root: Issued, inter: Issued) -> None:
    below = make_cert("sub", inter, ca=True)  # inter has pathlen 0: no CA below it
    leaf = make_cert("alice", below, ca=False)
    with pytest.raises(InvalidInput, match=r"chain\[2\] allows 0 CA certificate"):
        await log.add_chain([leaf.der(), below.der(), inter.der()], precert=False)


async def test_an_expired_or_future_ca_cannot_issue(log: CTLogService, root: Issued) -> None:
    for window in [(NOW - 30 * DAY, NOW - DAY), (NOW + DAY, NOW + 30 * DAY)]:
        inter = make_cert("old", root, ca=True, not_before=window[0], not_after=window[1])
        leaf = make_cert("alice", inter, ca=False, not_before=window[0], not_after=window[1])
        with pytest.raises(InvalidInput, match=r"chain\[1\] is not valid now"):
            await log.add_chain([leaf.der(), inter.der()], precert=False)


async def test_an_expired_leaf_is_still_logged(
    log: CTLogService, root: Issued, inter: Issued
) -> None:
    """CT records certificates whatever their age (Sigstore leaves live ten minutes)."""
    leaf = make_cert("alice", inter, ca=False, not_before=NOW - 2 * DAY,
                     not_after=NOW - DAY + dt.timedelta(minutes=10))
    await log.add_chain([leaf.der(), inter.der()], precert=False)


async def test_rfc5280_path_validation_applies(log: CTLogService, root: Issued) -> None:
    """What the explicit checks do not name is still enforced, e.g. unknown critical
    extensions on a CA certificate."""
    inter = make_cert("odd", root, ca=True, extra_critical=True)
    leaf = make_cert("alice", inter, ca=False)
    with pytest.raises(InvalidInput, match="does not validate"):
        await log.add_chain([leaf.der(), inter.der()], precert=False)


async def test_a_chain_with_a_foreign_root_is_refused(log: CTLogService, inter: Issued) -> None:
    other_root = make_cert("root", None, ca=True)
    other_inter = make_cert("intermediate", other_root, ca=True)
    leaf = make_cert("alice", other_inter, ca=False)
    with pytest.raises(InvalidInput, match="root accepted by this log"):
        await log.add_chain([leaf.der(), other_inter.der(), other_root.der()], precert=False)
