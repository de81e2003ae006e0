"""The exact bytes of the trust documents a stack publishes, pinned against golden files.

``client-trust-config.json`` (served and written by the app), ``trusted_root.json`` and
``signing_config.v0.2.json`` (TUF targets) are read byte for byte by sigstore-python and
sigstore-js; a refactoring of how they are built must not change a single byte.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from keyless.server.trust import (
    Authority,
    LogKey,
    ServiceUrl,
    TrustMaterial,
    Validity,
    note_key_id,
    spki_key_id,
)

GOLDEN = Path(__file__).parent / "data"


def _material() -> TrustMaterial:
    v2_key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key()
    v1_key = ec.derive_private_key(0x1234567, ec.SECP256R1()).public_key()
    ct_key = ec.derive_private_key(0x7654321, ec.SECP384R1()).public_key()
    # microseconds are published as whole seconds; a non-UTC zone is published in UTC
    start = Validity(datetime(2026, 1, 1, 12, 30, 15, 999_999, tzinfo=UTC))
    retired = Validity(
        datetime(2025, 6, 1, tzinfo=UTC),
        datetime.fromisoformat("2026-01-01T14:30:15.5+02:00"),
    )
    return TrustMaterial(
        certificate_authorities=[
            Authority("keyless", "keyless", "http://localhost:3000", (b"inter", b"root"), retired),
            Authority("keyless-g2", "keyless-g2", "http://localhost:3000", (b"i2", b"r2"), start),
        ],
        tlogs=[
            LogKey("http://localhost:3000/rekor", v2_key,
                   note_key_id("localhost:3000/rekor", v2_key), start),
            LogKey("http://localhost:3000", v1_key, spki_key_id(v1_key), retired),
        ],
        ctlogs=[LogKey("http://localhost:3000/ctlog", ct_key, spki_key_id(ct_key), start)],
        timestamp_authorities=[
            Authority("keyless", "keyless-tsa", "http://localhost:3000/api/v1/timestamp",
                      (b"leaf", b"root"), start),
        ],
        ca_urls=[ServiceUrl("http://localhost:3000", 1, start)],
        oidc_urls=[ServiceUrl("http://localhost:3000/oidc", 1, start)],
        rekor_urls=[
            ServiceUrl("http://localhost:3000/rekor", 2, start),
            ServiceUrl("http://localhost:3000", 1, retired),
        ],
        tsa_urls=[ServiceUrl("http://localhost:3000/api/v1/timestamp", 1, start)],
    )


def _documents() -> dict[str, bytes]:
    """The three documents, serialised exactly as the server writes them."""
    trust = _material()
    return {
        # keyless.server.app: the served/written client trust config
        "client-trust-config.json": json.dumps(trust.client_trust_config(), indent=2).encode()
        + b"\n",
        # keyless.server.wiring.add_tuf: the TUF targets
        "trusted_root.json": json.dumps(trust.trusted_root(), indent=2).encode(),
        "signing_config.v0.2.json": json.dumps(trust.signing_config(), indent=2).encode(),
    }


@pytest.mark.parametrize(
    "name", ["client-trust-config.json", "trusted_root.json", "signing_config.v0.2.json"]
)
def test_published_document_is_byte_for_byte_the_pinned_one(name: str) -> None:
    assert _documents()[name] == (GOLDEN / f"stack-{name}").read_bytes()
