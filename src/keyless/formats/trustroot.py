"""Trusted roots and client trust configs (protobuf-JSON, protocols.md §7,
``sigstore_trustroot.proto``): the one model of trust material, read by the client
(:mod:`keyless.trust`) and built and written by the server (:mod:`keyless.server.trust`). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keyless.errors import InvalidInput
from keyless.formats.jsonreader import StrictObject, ValidityPeriod, b64, load_json
from keyless.formats.signingconfig import SigningConfig

TRUSTED_ROOT_V01 = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
TRUSTED_ROOT_V02 = "application/vnd.dev.sigstore.trustedroot.v0.2+json"
CLIENT_TRUST_CONFIG_V01 = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"


@dataclass(frozen=True)
class TransparencyLogInstance:
    """A tlog or CT log: its key (DER SPKI), key details, validity and log ID."""

    base_url: str
    hash_algorithm: str
    public_key: bytes
    key_details: str
    valid_for: ValidityPeriod
    log_id: bytes
    checkpoint_key_id: bytes | None = None
    operator: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "baseUrl": self.base_url,
            "hashAlgorithm": self.hash_algorithm,
            "publicKey": {
                "rawBytes": b64(self.public_key),
                "keyDetails": self.key_details,
                "validFor": self.valid_for.to_json(),
            },
            "logId": {"keyId": b64(self.log_id)},
        }
        if self.checkpoint_key_id is not None:
            out["checkpointKeyId"] = {"keyId": b64(self.checkpoint_key_id)}
        if self.operator is not None:
            out["operator"] = self.operator
        return out

    @classmethod
    def from_json(cls, value: Any, path: str) -> TransparencyLogInstance:
        o = StrictObject(value, path)
        base_url = o.text("baseUrl")
        hash_algorithm = o.text("hashAlgorithm")
        pk = o.req_obj("publicKey")
        raw = pk.raw("rawBytes")
        details = pk.text("keyDetails")
        valid_for = ValidityPeriod.parse(pk.obj("validFor"), pk.path("validFor"))
        pk.done()
        lid = o.req_obj("logId")
        log_id = lid.raw("keyId")
        lid.done()
        ckid: bytes | None = None
        if (c := o.obj("checkpointKeyId")) is not None:
            ckid = c.raw("keyId")
            c.done()
        operator = o.text("operator", required=False) or None
        o.done()
        return cls(base_url, hash_algorithm, raw, details, valid_for, log_id, ckid, operator)


@dataclass(frozen=True)
class CertificateAuthority:
    """A Fulcio CA or a TSA: ``certChain`` (DER, leaf/intermediate first, root last)."""

    organization: str
    common_name: str
    uri: str
    cert_chain: tuple[bytes, ...]
    valid_for: ValidityPeriod
    operator: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "subject": {"organization": self.organization, "commonName": self.common_name},
            "uri": self.uri,
            "certChain": {"certificates": [{"rawBytes": b64(c)} for c in self.cert_chain]},
            "validFor": self.valid_for.to_json(),
        }
        if self.operator is not None:
            out["operator"] = self.operator
        return out

    @classmethod
    def from_json(cls, value: Any, path: str) -> CertificateAuthority:
        o = StrictObject(value, path)
        subject = o.obj("subject")
        organization = common_name = ""
        if subject is not None:
            organization = subject.text("organization", required=False)
            common_name = subject.text("commonName", required=False)
            subject.done()
        uri = o.text("uri", required=False)
        cc = o.req_obj("certChain")
        certs = []
        for i, item in enumerate(cc.items("certificates", required=True)):
            c = StrictObject(item, f"{cc.path('certificates')}[{i}]")
            certs.append(c.raw("rawBytes"))
            c.done()
        cc.done()
        if not certs:
            raise InvalidInput(f"{path}.certChain.certificates is empty")
        valid_for = ValidityPeriod.parse(o.obj("validFor"), o.path("validFor"))
        operator = o.text("operator", required=False) or None
        o.done()
        return cls(organization, common_name, uri, tuple(certs), valid_for, operator)


@dataclass(frozen=True)
class TrustedRoot:
    """``TrustedRoot``: the keys and certificates a verifier trusts (protocols.md §7)."""

    tlogs: tuple[TransparencyLogInstance, ...]
    certificate_authorities: tuple[CertificateAuthority, ...]
    ctlogs: tuple[TransparencyLogInstance, ...]
    timestamp_authorities: tuple[CertificateAuthority, ...] = ()
    media_type: str = TRUSTED_ROOT_V01

    def to_json(self) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "tlogs": [t.to_json() for t in self.tlogs],
            "certificateAuthorities": [c.to_json() for c in self.certificate_authorities],
            "ctlogs": [t.to_json() for t in self.ctlogs],
            "timestampAuthorities": [t.to_json() for t in self.timestamp_authorities],
        }

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any], path: str = "") -> TrustedRoot:
        """Parse strictly; both the v0.1 (what clients use) and v0.2 media types are read."""
        o = StrictObject(load_json(data, "trusted root"), path)
        media_type = o.text("mediaType")
        if media_type not in (TRUSTED_ROOT_V01, TRUSTED_ROOT_V02):
            raise InvalidInput(f"{o.path('mediaType')} {media_type!r} is not a trusted root")
        tlogs = tuple(
            TransparencyLogInstance.from_json(v, f"{o.path('tlogs')}[{i}]")
            for i, v in enumerate(o.items("tlogs", required=True))
        )
        cas = tuple(
            CertificateAuthority.from_json(v, f"{o.path('certificateAuthorities')}[{i}]")
            for i, v in enumerate(o.items("certificateAuthorities", required=True))
        )
        ctlogs = tuple(
            TransparencyLogInstance.from_json(v, f"{o.path('ctlogs')}[{i}]")
            for i, v in enumerate(o.items("ctlogs", required=True))
        )
        tsas = tuple(
            CertificateAuthority.from_json(v, f"{o.path('timestampAuthorities')}[{i}]")
            for i, v in enumerate(o.items("timestampAuthorities"))
        )
        o.done()
        return cls(tlogs, cas, ctlogs, tsas, media_type)


@dataclass(frozen=True)
class ClientTrustConfig:
    """sigstore-python's single-file trust config (protocols.md §7, interop.md §2.1)."""

    trusted_root: TrustedRoot
    signing_config: SigningConfig | None = None
    media_type: str = CLIENT_TRUST_CONFIG_V01

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "trustedRoot": self.trusted_root.to_json(),
        }
        if self.signing_config is not None:
            out["signingConfig"] = self.signing_config.to_json()
        return out

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any]) -> ClientTrustConfig:
        """Parse strictly; the snake_case ``signing_config`` key is accepted too."""
        o = StrictObject(load_json(data, "client trust config"), "")
        media_type = o.text("mediaType")
        if media_type != CLIENT_TRUST_CONFIG_V01:
            raise InvalidInput(f"mediaType {media_type!r} is not a client trust config v0.1")
        root = TrustedRoot.from_json(o.get("trustedRoot") or {}, "trustedRoot")
        sc = o.get("signingConfig", "signing_config")
        signing = SigningConfig.from_json(sc, "signingConfig") if sc is not None else None
        o.done()
        return cls(root, signing, media_type)
