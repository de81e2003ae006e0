"""Sigstore bundles (protobuf-JSON, protocols.md §6, ``sigstore_bundle.proto``).

Trusted roots and client trust configs are :mod:`keyless.formats.trustroot`, signing configs
:mod:`keyless.formats.signingconfig`, the strict JSON reader :mod:`keyless.formats.jsonreader`.

Why hand-written dataclasses instead of ``sigstore-models``/pydantic: the verify CLI must start in
≤ 300 ms, and importing ``sigstore_models`` alone costs ~230 ms on the 2-core CI machine (measured:
``python -c "import sigstore_models.bundle.v1"`` 0.23-0.38 s vs. 0.13 s for cryptography +
rfc3161-client together). These models are small, frozen and strict (see
:mod:`keyless.formats.jsonreader`). This module is pure: no I/O, no cryptography import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keyless.errors import InvalidInput, field_name, shown
from keyless.formats.dsse import Envelope
from keyless.formats.jsonreader import StrictObject, b64, b64decode, load_json

# --- media types (protocols.md §6) ----------------------------------------------------------

BUNDLE_V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
BUNDLE_V02 = "application/vnd.dev.sigstore.bundle+json;version=0.2"
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle+json;version=0.3"
BUNDLE_V03_NEW = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_TYPES: dict[str, str] = {
    BUNDLE_V01: "0.1",
    BUNDLE_V02: "0.2",
    BUNDLE_V03: "0.3",
    BUNDLE_V03_NEW: "0.3",
}


# --- bundle (protocols.md §6) ----------------------------------------------------------------


@dataclass(frozen=True)
class HashOutput:
    """``HashOutput``: algorithm name (``SHA2_256`` …) and raw digest."""

    algorithm: str
    digest: bytes


@dataclass(frozen=True)
class MessageSignature:
    """``MessageSignature``: a signature over an artifact digest (hashedrekord)."""

    signature: bytes
    message_digest: HashOutput | None = None


@dataclass(frozen=True)
class InclusionProof:
    """``InclusionProof``: RFC 6962 audit path of ``log_index`` (shard-local) in ``tree_size``."""

    log_index: int
    root_hash: bytes
    tree_size: int
    hashes: tuple[bytes, ...]
    checkpoint: str | None


@dataclass(frozen=True)
class TransparencyLogEntry:
    """``TransparencyLogEntry``: one tlog entry with its proof (and SET for Rekor v1)."""

    log_index: int
    log_id: bytes
    kind: str
    version: str
    integrated_time: int
    canonicalized_body: bytes
    inclusion_promise: bytes | None = None
    inclusion_proof: InclusionProof | None = None

    def to_json(self) -> dict[str, Any]:
        """Fully populated protobuf-JSON (interop.md §5 gotcha 1: never drop zero values)."""
        out: dict[str, Any] = {
            "logIndex": str(self.log_index),
            "logId": {"keyId": b64(self.log_id)},
            "kindVersion": {"kind": self.kind, "version": self.version},
            "integratedTime": str(self.integrated_time),
        }
        if self.inclusion_promise is not None:
            out["inclusionPromise"] = {"signedEntryTimestamp": b64(self.inclusion_promise)}
        if self.inclusion_proof is not None:
            p = self.inclusion_proof
            proof: dict[str, Any] = {
                "logIndex": str(p.log_index),
                "rootHash": b64(p.root_hash),
                "treeSize": str(p.tree_size),
                "hashes": [b64(h) for h in p.hashes],
            }
            if p.checkpoint is not None:
                proof["checkpoint"] = {"envelope": p.checkpoint}
            out["inclusionProof"] = proof
        out["canonicalizedBody"] = b64(self.canonicalized_body)
        return out

    @classmethod
    def from_json(cls, value: Any, path: str = "tlogEntry") -> TransparencyLogEntry:
        """Parse one entry strictly (also used for Rekor v2 POST responses, protocols.md §4)."""
        o = StrictObject(value, path)
        log_index = o.integer("logIndex")
        log_id = o.req_obj("logId")
        key_id = log_id.raw("keyId")
        log_id.done()
        kv = o.req_obj("kindVersion")
        kind = kv.text("kind")
        version = kv.text("version")
        kv.done()
        integrated_time = o.integer("integratedTime", required=False)
        promise: bytes | None = None
        if (p := o.obj("inclusionPromise")) is not None:
            promise = p.raw("signedEntryTimestamp")
            p.done()
        proof: InclusionProof | None = None
        if (ip := o.obj("inclusionProof")) is not None:
            hashes = tuple(
                b64decode(h, f"{ip.path('hashes')}[{i}]") for i, h in enumerate(ip.items("hashes"))
            )
            checkpoint: str | None = None
            if (cp := ip.obj("checkpoint")) is not None:
                checkpoint = cp.text("envelope")
                cp.done()
            proof = InclusionProof(
                log_index=ip.integer("logIndex"),
                root_hash=ip.raw("rootHash"),
                tree_size=ip.integer("treeSize"),
                hashes=hashes,
                checkpoint=checkpoint,
            )
            ip.done()
        body = o.raw("canonicalizedBody")
        o.done()
        return cls(
            log_index=log_index,
            log_id=key_id,
            kind=kind,
            version=version,
            integrated_time=integrated_time,
            canonicalized_body=body,
            inclusion_promise=promise,
            inclusion_proof=proof,
        )


@dataclass(frozen=True)
class VerificationMaterial:
    """``VerificationMaterial``: exactly one of a certificate chain (leaf first) or a key hint."""

    certificates: tuple[bytes, ...] = ()
    public_key_hint: str | None = None
    tlog_entries: tuple[TransparencyLogEntry, ...] = ()
    rfc3161_timestamps: tuple[bytes, ...] = ()
    chain_form: bool = False  # True: ``x509CertificateChain`` (v0.1/v0.2); False: ``certificate``


@dataclass(frozen=True)
class Bundle:
    """A Sigstore bundle (v0.1, v0.2, v0.3) with exactly one of a message signature or DSSE."""

    media_type: str
    verification_material: VerificationMaterial
    message_signature: MessageSignature | None = None
    dsse_envelope: Envelope | None = None
    raw_envelope: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def version(self) -> str:
        """``"0.1"``, ``"0.2"`` or ``"0.3"``."""
        return BUNDLE_MEDIA_TYPES[self.media_type]

    @property
    def signature(self) -> bytes:
        """The signature bytes that RFC 3161 timestamps cover (protocols.md §8)."""
        if self.message_signature is not None:
            return self.message_signature.signature
        assert self.dsse_envelope is not None
        return self.dsse_envelope.signatures[0].sig

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any]) -> Bundle:
        """Parse and structurally validate a bundle (protocols.md §6 and §9 "Bundle load")."""
        loaded = load_json(data, "bundle")
        if not isinstance(loaded, dict):
            raise InvalidInput("the bundle must be a JSON object")
        o = StrictObject(loaded, "")
        media_type = o.text("mediaType")
        if media_type not in BUNDLE_MEDIA_TYPES:
            raise InvalidInput(f"mediaType {shown(media_type)} is not a supported bundle version")
        version = BUNDLE_MEDIA_TYPES[media_type]
        vm = o.req_obj("verificationMaterial")
        certificates: tuple[bytes, ...] = ()
        hint: str | None = None
        chain_form = False
        cert = vm.obj("certificate")
        chain = vm.obj("x509CertificateChain")
        pk = vm.obj("publicKey")
        if sum(x is not None for x in (cert, chain, pk)) != 1:
            raise InvalidInput(
                "verificationMaterial must hold exactly one of certificate, "
                "x509CertificateChain or publicKey"
            )
        if cert is not None:
            if version != "0.3":
                raise InvalidInput(
                    f"verificationMaterial.certificate is not allowed in a v{version} bundle "
                    "(use x509CertificateChain)"
                )
            certificates = (cert.raw("rawBytes"),)
            cert.done()
            if not certificates[0]:
                raise InvalidInput("verificationMaterial.certificate.rawBytes is empty")
        elif chain is not None:
            if version == "0.3":
                raise InvalidInput(
                    "verificationMaterial.x509CertificateChain is not allowed in a v0.3 bundle "
                    "(use certificate)"
                )
            chain_form = True
            items = chain.items("certificates", required=True)
            if not items:
                raise InvalidInput(
                    "verificationMaterial.x509CertificateChain.certificates is empty"
                )
            certs = []
            for i, item in enumerate(items):
                c = StrictObject(item, f"{chain.path('certificates')}[{i}]")
                certs.append(c.raw("rawBytes"))
                c.done()
            certificates = tuple(certs)
            chain.done()
        elif pk is not None:
            hint = pk.text("hint", required=False)
            pk.done()
        entries = tuple(
            TransparencyLogEntry.from_json(e, f"verificationMaterial.tlogEntries[{i}]")
            for i, e in enumerate(vm.items("tlogEntries", required=True))
        )
        timestamps: list[bytes] = []
        if (tvd := vm.obj("timestampVerificationData")) is not None:
            key = "verificationMaterial.timestampVerificationData.rfc3161Timestamps"
            for i, item in enumerate(tvd.items("rfc3161Timestamps")):
                t = StrictObject(item, f"{key}[{i}]")
                timestamps.append(t.raw("signedTimestamp"))
                t.done()
            tvd.done()
        vm.done()
        material = VerificationMaterial(
            certificates=certificates,
            public_key_hint=hint,
            tlog_entries=entries,
            rfc3161_timestamps=tuple(timestamps),
            chain_form=chain_form,
        )
        message_signature: MessageSignature | None = None
        envelope: Envelope | None = None
        raw_envelope: dict[str, Any] | None = None
        ms = o.obj("messageSignature")
        de = o.get("dsseEnvelope")
        if (ms is None) == (de is None):
            raise InvalidInput("bundle must hold exactly one of messageSignature or dsseEnvelope")
        if ms is not None:
            digest: HashOutput | None = None
            if (md := ms.obj("messageDigest")) is not None:
                digest = HashOutput(md.text("algorithm"), md.raw("digest"))
                md.done()
            message_signature = MessageSignature(ms.raw("signature"), digest)
            ms.done()
        else:
            raw_envelope = de
            envelope = Envelope.from_json(de, "dsseEnvelope")
            allowed = {"payload", "payloadType", "signatures"}
            extra = sorted(set(de) - allowed)
            if extra:
                raise InvalidInput(f"dsseEnvelope.{field_name(extra[0])} is not a known field")
        o.done()
        return cls(media_type, material, message_signature, envelope, raw_envelope)

    def to_json(self) -> dict[str, Any]:
        """The bundle as protobuf-JSON; v0.3 bundles use ``certificate`` (protocols.md §6)."""
        vm = self.verification_material
        material: dict[str, Any] = {}
        if vm.public_key_hint is not None:
            material["publicKey"] = {"hint": vm.public_key_hint}
        elif vm.chain_form:
            material["x509CertificateChain"] = {
                "certificates": [{"rawBytes": b64(c)} for c in vm.certificates]
            }
        else:
            material["certificate"] = {"rawBytes": b64(vm.certificates[0])}
        material["tlogEntries"] = [e.to_json() for e in vm.tlog_entries]
        material["timestampVerificationData"] = {
            "rfc3161Timestamps": [{"signedTimestamp": b64(t)} for t in vm.rfc3161_timestamps]
        }
        out: dict[str, Any] = {"mediaType": self.media_type, "verificationMaterial": material}
        if self.message_signature is not None:
            ms: dict[str, Any] = {}
            if self.message_signature.message_digest is not None:
                ms["messageDigest"] = {
                    "algorithm": self.message_signature.message_digest.algorithm,
                    "digest": b64(self.message_signature.message_digest.digest),
                }
            ms["signature"] = b64(self.message_signature.signature)
            out["messageSignature"] = ms
        elif self.dsse_envelope is not None:
            out["dsseEnvelope"] = self.dsse_envelope.to_json()
        return out

    def to_bytes(self) -> bytes:
        """Serialised JSON, as written to ``*.sigstore.json``."""
        return json.dumps(self.to_json(), indent=2).encode() + b"\n"
