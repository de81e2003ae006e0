"""Trust material generated from the running instance (interop.md §2.1, protocols.md §7).

A client needs three documents to use a keyless stack: the **trusted root** (v0.1 media type —
sigstore-python 4.5.1 rejects v0.2), the **signing config** v0.2 and sigstore-python's
**ClientTrustConfig** wrapping both. They are derived only from public values of the running
services, with the rules of interop.md §5 that real clients enforce:

* item 8/9 — every log's ``logId.keyId`` is what the log puts into entries and checkpoints:
  SHA-256(SPKI DER) for ECDSA logs (Rekor v1, CT), the C2SP signed-note key ID
  SHA-256(origin ‖ "\\n" ‖ 0x01 ‖ raw key) for the Ed25519 Rekor v2 log; each ``baseUrl``
  contains its checkpoint signer name as a substring;
* item 10 — the CA URL is the port root, Rekor URLs are bases, the TSA URL is the full endpoint,
  no trailing slashes;
* item 11 — validity windows start in the past; a rotated-out key keeps an ``end``.

Everything here is pure: it builds dicts from dataclasses and never touches the network.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from keyless import keys
from keyless.errors import ConfigError
from keyless.formats.checkpoint import ed25519_key_id
from keyless.keys import PublicKey, spki_der

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
CLIENT_TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
OPERATOR = "keyless"


def rfc3339(moment: datetime) -> str:
    """UTC RFC 3339 with a ``Z`` suffix and whole seconds, as protobuf-JSON Timestamps are."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Validity:
    """A ``TimeRange``: inclusive start, optional inclusive end (protocols.md §7)."""

    start: datetime
    end: datetime | None = None

    def to_json(self) -> dict[str, str]:
        out = {"start": rfc3339(self.start)}
        if self.end is not None:
            out["end"] = rfc3339(self.end)
        return out

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment and (self.end is None or moment <= self.end)


def spki_key_id(key: PublicKey) -> bytes:
    """SHA-256 of the SPKI DER: the log ID of Rekor v1 and RFC 6962 CT logs."""
    return hashlib.sha256(spki_der(key)).digest()


def note_key_id(origin: str, key: ed25519.Ed25519PublicKey) -> bytes:
    """The C2SP signed-note key ID of an Ed25519 key: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ raw key).

    This is the Rekor v2 log ID (interop.md §5 item 9); its first 4 bytes are the key hint.
    """
    if " " in origin or "+" in origin or "\n" in origin:
        raise ConfigError(f"checkpoint origin {origin!r} must not contain spaces, '+' or newlines")
    return ed25519_key_id(origin, key)


def key_details(key: PublicKey) -> str:
    """The ``PublicKeyDetails`` enum name for ``key`` (protobuf-specs sigstore_common.proto)."""
    details = keys.key_details(key)
    if details is None:
        raise ConfigError(f"no trusted-root key type for {type(key).__name__}")
    return details


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class LogKey:
    """One transparency or CT log key as published in ``tlogs``/``ctlogs``."""

    base_url: str
    public_key: PublicKey
    key_id: bytes
    validity: Validity

    def to_json(self) -> dict[str, Any]:
        return {
            "baseUrl": self.base_url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": _b64(spki_der(self.public_key)),
                "keyDetails": key_details(self.public_key),
                "validFor": self.validity.to_json(),
            },
            "logId": {"keyId": _b64(self.key_id)},
        }


@dataclass(frozen=True)
class Authority:
    """A CA or TSA as published in ``certificateAuthorities``/``timestampAuthorities``.

    ``chain`` is DER, leaf-most first and the self-signed root last (protocols.md §7: for the
    CA the intermediate must be listed, sigstore-python ignores bundle-supplied intermediates).
    """

    organization: str
    common_name: str
    uri: str
    chain: tuple[bytes, ...]
    validity: Validity

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": {"organization": self.organization, "commonName": self.common_name},
            "uri": self.uri,
            "certChain": {"certificates": [{"rawBytes": _b64(der)} for der in self.chain]},
            "validFor": self.validity.to_json(),
        }


@dataclass(frozen=True)
class ServiceUrl:
    """One signing-config ``Service`` entry."""

    url: str
    major_api_version: int
    validity: Validity

    def to_json(self) -> dict[str, Any]:
        if self.url.endswith("/"):
            raise ConfigError(f"service URL {self.url!r} must not end with '/' (interop.md §5)")
        return {
            "url": self.url,
            "majorApiVersion": self.major_api_version,
            "validFor": self.validity.to_json(),
            "operator": OPERATOR,
        }


@dataclass(frozen=True)
class TrustMaterial:
    """The public description of an instance, from which all three documents are built."""

    certificate_authorities: Sequence[Authority] = ()
    tlogs: Sequence[LogKey] = ()
    ctlogs: Sequence[LogKey] = ()
    timestamp_authorities: Sequence[Authority] = ()
    ca_urls: Sequence[ServiceUrl] = ()
    oidc_urls: Sequence[ServiceUrl] = ()
    #: Rekor logs in preference order: v2 before v1 (sigstore-python keeps the highest version
    #: per operator, and ``--rekor-version 1`` selects the v1 entry).
    rekor_urls: Sequence[ServiceUrl] = ()
    tsa_urls: Sequence[ServiceUrl] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def trusted_root(self) -> dict[str, Any]:
        """``trusted_root.json`` (v0.1 media type, strict camelCase keys)."""
        return {
            "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": [log.to_json() for log in self.tlogs],
            "certificateAuthorities": [ca.to_json() for ca in self.certificate_authorities],
            "ctlogs": [log.to_json() for log in self.ctlogs],
            "timestampAuthorities": [tsa.to_json() for tsa in self.timestamp_authorities],
        }

    def signing_config(self) -> dict[str, Any]:
        """``signing_config.v0.2.json``: where to sign; ``ANY`` picks the first usable log/TSA."""
        return {
            "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
            "caUrls": [s.to_json() for s in self.ca_urls],
            "oidcUrls": [s.to_json() for s in self.oidc_urls],
            "rekorTlogUrls": [s.to_json() for s in self.rekor_urls],
            "tsaUrls": [s.to_json() for s in self.tsa_urls],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        }

    def client_trust_config(self) -> dict[str, Any]:
        """sigstore-python's single-file ``--trust-config`` document."""
        return {
            "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
            "trustedRoot": self.trusted_root(),
            "signingConfig": self.signing_config(),
        }
