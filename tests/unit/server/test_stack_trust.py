"""Trust material of a stack: the shapes sigstore-python 4.5.1 parses strictly (interop.md §2.1)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keyless.errors import ConfigError
from keyless.formats.note_keys import ed25519_key_id
from keyless.server.trust import (
    Authority,
    LogKey,
    ServiceUrl,
    TrustMaterial,
    Validity,
    key_details,
    note_key_id,
    spki_key_id,
)

START = Validity(datetime(2026, 1, 1, tzinfo=UTC))


def _material() -> TrustMaterial:
    v2_key = ed25519.Ed25519PrivateKey.generate().public_key()
    v1_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return TrustMaterial(
        certificate_authorities=[Authority("keyless", "keyless", "http://localhost:3000",
                                           (b"inter", b"root"), START)],
        tlogs=[LogKey("http://localhost:3000/rekor", v2_key,
                      note_key_id("localhost:3000/rekor", v2_key), START),
               LogKey("http://localhost:3000", v1_key, spki_key_id(v1_key), START)],
        ctlogs=[LogKey("http://localhost:3000/ctlog", v1_key, spki_key_id(v1_key), START)],
        timestamp_authorities=[Authority("keyless", "keyless-tsa",
                                         "http://localhost:3000/api/v1/timestamp",
                                         (b"leaf", b"root"), START)],
        ca_urls=[ServiceUrl("http://localhost:3000", 1, START)],
        oidc_urls=[ServiceUrl("http://localhost:3000/oidc", 1, START)],
        rekor_urls=[ServiceUrl("http://localhost:3000/rekor", 2, START),
                    ServiceUrl("http://localhost:3000", 1, START)],
        tsa_urls=[ServiceUrl("http://localhost:3000/api/v1/timestamp", 1, START)],
    )


def test_rekor_v2_log_id_is_the_c2sp_note_key_id() -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    expected = hashlib.sha256(b"localhost:3000/rekor\n\x01" + raw).digest()
    assert note_key_id("localhost:3000/rekor", key) == expected
    assert note_key_id("localhost:3000/rekor", key) == ed25519_key_id("localhost:3000/rekor", key)
    with pytest.raises(ConfigError):
        note_key_id("has space", key)


def test_documents_have_the_media_types_and_keys_clients_require() -> None:
    material = _material()
    root = material.trusted_root()
    assert root["mediaType"] == "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    assert set(root) == {"mediaType", "tlogs", "certificateAuthorities", "ctlogs",
                         "timestampAuthorities"}
    v2 = root["tlogs"][0]
    assert v2["publicKey"]["keyDetails"] == "PKIX_ED25519"
    assert v2["publicKey"]["validFor"] == {"start": "2026-01-01T00:00:00Z"}
    assert base64.b64decode(v2["logId"]["keyId"]) == material.tlogs[0].key_id
    ca = root["certificateAuthorities"][0]
    assert ca["certChain"]["certificates"] == [{"rawBytes": base64.b64encode(b"inter").decode()},
                                               {"rawBytes": base64.b64encode(b"root").decode()}]
    signing = material.signing_config()
    assert signing["mediaType"] == "application/vnd.dev.sigstore.signingconfig.v0.2+json"
    assert [u["majorApiVersion"] for u in signing["rekorTlogUrls"]] == [2, 1]
    assert signing["tsaUrls"][0]["url"].endswith("/api/v1/timestamp")
    wrapper = material.client_trust_config()
    assert wrapper["mediaType"] == "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
    assert wrapper["trustedRoot"] == root and wrapper["signingConfig"] == signing


def test_trailing_slash_urls_are_refused() -> None:
    with pytest.raises(ConfigError, match="must not end"):
        TrustMaterial(ca_urls=[ServiceUrl("http://localhost:3000/", 1, START)]).signing_config()


def test_rotated_key_keeps_an_end() -> None:
    end = datetime(2026, 6, 1, tzinfo=UTC)
    window = Validity(START.start, end)
    assert window.to_json() == {"start": "2026-01-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"}
    assert window.contains(datetime(2026, 3, 1, tzinfo=UTC))
    assert not window.contains(datetime(2026, 7, 1, tzinfo=UTC))


def test_key_details_by_type() -> None:
    assert key_details(ec.generate_private_key(ec.SECP384R1()).public_key()) == (
        "PKIX_ECDSA_P384_SHA_384")
    assert key_details(ec.generate_private_key(ec.SECP256R1()).public_key()) == (
        "PKIX_ECDSA_P256_SHA_256")
