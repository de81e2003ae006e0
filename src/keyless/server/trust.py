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

The documents are the one model of :mod:`keyless.formats.trustroot` and
:mod:`keyless.formats.signingconfig`, serialised by it; this module only builds those values from
the stack's keys. Everything here is pure: it never touches the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from keyless import keys
from keyless.errors import ConfigError
from keyless.formats.jsonreader import ValidityPeriod
from keyless.formats.note_keys import ed25519_key_id
from keyless.formats.signingconfig import (
    SIGNING_CONFIG_V02,
    Service,
    ServiceSelector,
    SigningConfig,
)
from keyless.formats.trustroot import (
    CLIENT_TRUST_CONFIG_V01,
    TRUSTED_ROOT_V01,
    CertificateAuthority,
    ClientTrustConfig,
    TransparencyLogInstance,
    TrustedRoot,
)
from keyless.keys import PublicKey, spki_der

TRUSTED_ROOT_MEDIA_TYPE = TRUSTED_ROOT_V01
SIGNING_CONFIG_MEDIA_TYPE = SIGNING_CONFIG_V02
CLIENT_TRUST_CONFIG_MEDIA_TYPE = CLIENT_TRUST_CONFIG_V01
OPERATOR = "keyless"

#: The names the stack's wiring builds with: the shared model types themselves.
Validity = ValidityPeriod
Authority = CertificateAuthority
ServiceUrl = Service


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


def published(validity: ValidityPeriod) -> ValidityPeriod:
    """``validity`` as it is published: UTC, whole seconds (protobuf-JSON Timestamps)."""

    def whole(moment: datetime) -> datetime:
        return moment.astimezone(UTC).replace(microsecond=0)

    return ValidityPeriod(
        whole(validity.start), whole(validity.end) if validity.end is not None else None
    )


@dataclass(frozen=True)
class LogKey:
    """One transparency or CT log key of the stack, to be published in ``tlogs``/``ctlogs``."""

    base_url: str
    public_key: PublicKey
    key_id: bytes
    validity: ValidityPeriod

    def instance(self) -> TransparencyLogInstance:
        """The trusted-root entry (SHA-256 Merkle trees; the key as SPKI DER)."""
        return TransparencyLogInstance(
            base_url=self.base_url,
            hash_algorithm="SHA2_256",
            public_key=spki_der(self.public_key),
            key_details=key_details(self.public_key),
            valid_for=published(self.validity),
            log_id=self.key_id,
        )


def _authority(authority: CertificateAuthority) -> CertificateAuthority:
    """A CA or TSA as published: ``chain`` is DER, leaf-most first and the self-signed root
    last (protocols.md §7: for the CA the intermediate must be listed, sigstore-python ignores
    bundle-supplied intermediates)."""
    return dataclasses.replace(authority, valid_for=published(authority.valid_for))


def _service(service: Service) -> Service:
    """A signing-config ``Service`` as published: no trailing slash, operated by keyless."""
    if service.url.endswith("/"):
        raise ConfigError(f"service URL {service.url!r} must not end with '/' (interop.md §5)")
    return dataclasses.replace(
        service, valid_for=published(service.valid_for), operator=OPERATOR
    )


@dataclass(frozen=True)
class TrustMaterial:
    """The public description of an instance, from which all three documents are built."""

    certificate_authorities: Sequence[CertificateAuthority] = ()
    tlogs: Sequence[LogKey] = ()
    ctlogs: Sequence[LogKey] = ()
    timestamp_authorities: Sequence[CertificateAuthority] = ()
    ca_urls: Sequence[Service] = ()
    oidc_urls: Sequence[Service] = ()
    #: Rekor logs in preference order: v2 before v1 (sigstore-python keeps the highest version
    #: per operator, and ``--rekor-version 1`` selects the v1 entry).
    rekor_urls: Sequence[Service] = ()
    tsa_urls: Sequence[Service] = ()

    def root(self) -> TrustedRoot:
        """The trusted root (v0.1 media type)."""
        return TrustedRoot(
            tlogs=tuple(log.instance() for log in self.tlogs),
            certificate_authorities=tuple(_authority(a) for a in self.certificate_authorities),
            ctlogs=tuple(log.instance() for log in self.ctlogs),
            timestamp_authorities=tuple(_authority(a) for a in self.timestamp_authorities),
            media_type=TRUSTED_ROOT_V01,
        )

    def signing(self) -> SigningConfig:
        """The signing config v0.2: where to sign; ``ANY`` picks the first usable log/TSA."""
        return SigningConfig(
            ca_urls=tuple(_service(s) for s in self.ca_urls),
            oidc_urls=tuple(_service(s) for s in self.oidc_urls),
            rekor_tlog_urls=tuple(_service(s) for s in self.rekor_urls),
            tsa_urls=tuple(_service(s) for s in self.tsa_urls),
            rekor_tlog_config=ServiceSelector("ANY"),
            tsa_config=ServiceSelector("ANY"),
        )

    def client(self) -> ClientTrustConfig:
        """sigstore-python's single-file ``--trust-config`` document."""
        return ClientTrustConfig(self.root(), self.signing())

    def trusted_root(self) -> dict[str, Any]:
        """``trusted_root.json`` (strict camelCase keys)."""
        return self.root().to_json()

    def signing_config(self) -> dict[str, Any]:
        """``signing_config.v0.2.json``."""
        return self.signing().to_json()

    def client_trust_config(self) -> dict[str, Any]:
        """``client-trust-config.json``."""
        return self.client().to_json()
