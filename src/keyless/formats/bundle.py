"""Sigstore bundles, trusted roots, signing configs and client trust configs (protobuf-JSON).

protocols.md §6 (bundle, ``sigstore_bundle.proto``) and §7 (``sigstore_trustroot.proto``).

Why hand-written dataclasses instead of ``sigstore-models``/pydantic: the verify CLI must start in
≤ 300 ms, and importing ``sigstore_models`` alone costs ~230 ms on the 2-core CI machine (measured:
``python -c "import sigstore_models.bundle.v1"`` 0.23-0.38 s vs. 0.13 s for cryptography +
rfc3161-client together). These models are small, frozen and strict: unknown keys are rejected and
every error names the JSON path of the offending field (the same strictness as sigstore-python's
``extra_forbidden`` models). Parsing follows proto3 JSON rules (architecture-docs client-spec §5):
lowerCamelCase keys, 64-bit integers as decimal strings (numbers tolerated), bytes as standard
base64, RFC 3339 timestamps, ``null`` read as "absent". This module is pure: no I/O, no
cryptography import.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keyless.errors import InvalidInput, field_name, shown
from keyless.formats.dsse import Envelope

# --- media types (protocols.md §6, §7) -------------------------------------------------------

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
TRUSTED_ROOT_V01 = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
TRUSTED_ROOT_V02 = "application/vnd.dev.sigstore.trustedroot.v0.2+json"
SIGNING_CONFIG_V02 = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
CLIENT_TRUST_CONFIG_V01 = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"


# --- strict protobuf-JSON readers ------------------------------------------------------------


#: A proto3 JSON int64 as text: an optional minus and at most 19 digits (RFC 7159 numbers are
#: not what protojson writes, but a longer string cannot be an int64 anyway).
_INT64_TEXT = re.compile(r"-?[0-9]{1,19}")


class _Obj:
    """A JSON object being read strictly: every key must be consumed or is reported unknown."""

    __slots__ = ("_data", "_path", "_seen")

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise InvalidInput(f"{path or 'the document'} must be a JSON object")
        self._data: dict[str, Any] = data
        self._path = path
        self._seen: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def get(self, *keys: str) -> Any:
        """The value of the first present key among aliases (``null`` counts as absent)."""
        for key in keys:
            self._seen.add(key)
        for key in keys:
            value = self._data.get(key)
            if value is not None:
                return value
        return None

    def obj(self, key: str, *, required: bool = False) -> _Obj | None:
        value = self.get(key)
        if value is None:
            if required:
                raise InvalidInput(f"{self.path(key)} is required")
            return None
        return _Obj(value, self.path(key))

    def req_obj(self, key: str) -> _Obj:
        value = self.obj(key, required=True)
        assert value is not None
        return value

    def items(self, key: str, *, required: bool = False) -> list[Any]:
        value = self.get(key)
        if value is None:
            if required:
                raise InvalidInput(f"{self.path(key)} is required")
            return []
        if not isinstance(value, list):
            raise InvalidInput(f"{self.path(key)} must be a list")
        return value

    def text(self, key: str, *, required: bool = True, default: str = "") -> str:
        value = self.get(key)
        if value is None:
            if required:
                raise InvalidInput(f"{self.path(key)} is required")
            return default
        if not isinstance(value, str):
            raise InvalidInput(f"{self.path(key)} must be a string")
        if not value.isascii():
            check_utf8(value, self.path(key))
        return value

    def raw(self, key: str, *, required: bool = True) -> bytes:
        value = self.get(key)
        if value is None:
            if required:
                raise InvalidInput(f"{self.path(key)} is required")
            return b""
        return b64decode(value, self.path(key))

    def integer(self, key: str, *, required: bool = True, minimum: int = 0) -> int:
        """A 64-bit integer: proto3 JSON writes it as a decimal string, numbers are tolerated."""
        value = self.get(key)
        if value is None:
            if required:
                raise InvalidInput(f"{self.path(key)} is required")
            return 0
        result: int
        if isinstance(value, bool):
            raise InvalidInput(f"{self.path(key)} must be an integer")
        if isinstance(value, int):
            result = value
        elif isinstance(value, str) and _INT64_TEXT.fullmatch(value):
            result = int(value)
        else:
            raise InvalidInput(f"{self.path(key)} must be an integer")
        if result < minimum:
            raise InvalidInput(f"{self.path(key)} must be ≥ {minimum}, got {result}")
        if result >= 1 << 63:
            raise InvalidInput(f"{self.path(key)} is out of range")
        return result

    def done(self) -> None:
        """Reject keys nobody asked for (strict parsing, like ``extra_forbidden``)."""
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            where = f"{self._path}." if self._path else ""
            raise InvalidInput(f"{where}{field_name(unknown[0])} is not a known field")


def check_utf8(value: str, what: str) -> None:
    """JSON may escape lone UTF-16 surrogates (``\\ud800``) that no UTF-8 text can hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{what} is not valid Unicode (a lone surrogate)") from exc


def b64decode(value: Any, what: str) -> bytes:
    """Bytes as protobuf-JSON reads them (RFC 4648 §4 standard base64, as Go's protojson does:
    line breaks are ignored, the URL-safe alphabet (§5) and missing padding are accepted).
    Anything else is rejected rather than silently skipped."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a base64 string")
    try:  # the common, canonical case (strict_mode: alphabet and padding, RFC 4648 §4)
        return binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    text = value.replace("\n", "").replace("\r", "")
    if "-" in text or "_" in text:
        text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what} is not valid base64") from exc


def b64(data: bytes) -> str:
    """Standard base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")


def parse_time(value: Any, what: str) -> datetime:
    """An RFC 3339 timestamp (``Z`` or offset, fractional seconds allowed) as aware UTC."""
    if not isinstance(value, str) or "T" not in value:
        raise InvalidInput(f"{what} must be an RFC 3339 timestamp")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{what} is not a valid RFC 3339 timestamp") from exc
    if parsed.tzinfo is None:
        raise InvalidInput(f"{what} must carry a time zone")
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 with ``Z``, as proto3 JSON writes ``google.protobuf.Timestamp``."""
    text = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return text


def _load(data: bytes | str | Mapping[str, Any], what: str) -> Any:
    if isinstance(data, bytes | str):
        try:
            return json.loads(data)
        except RecursionError as exc:
            raise InvalidInput(f"{what} is nested too deeply") from exc
        except ValueError as exc:
            raise InvalidInput(f"{what} is not valid JSON: {exc}") from exc
    return data


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
        o = _Obj(value, path)
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
        loaded = _load(data, "bundle")
        if not isinstance(loaded, dict):
            raise InvalidInput("the bundle must be a JSON object")
        o = _Obj(loaded, "")
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
                c = _Obj(item, f"{chain.path('certificates')}[{i}]")
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
                t = _Obj(item, f"{key}[{i}]")
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


# --- trusted root (protocols.md §7) ----------------------------------------------------------


@dataclass(frozen=True)
class ValidityPeriod:
    """``TimeRange``; both ends inclusive (protocols.md §7: ``validFor`` inclusive)."""

    start: datetime
    end: datetime | None = None

    def contains(self, when: datetime) -> bool:
        """Whether ``when`` lies in [start, end] (closed interval)."""
        return self.start <= when and (self.end is None or when <= self.end)

    def to_json(self) -> dict[str, str]:
        out = {"start": format_time(self.start)}
        if self.end is not None:
            out["end"] = format_time(self.end)
        return out

    @classmethod
    def parse(cls, o: _Obj | None, path: str) -> ValidityPeriod:
        """A ``validFor`` whose ``start`` is mandatory (the conformance suite rejects roots
        without it: trust-root-tlog-missing-validity-start_fail)."""
        if o is None:
            raise InvalidInput(f"{path} is required")
        start = o.get("start")
        if start is None:
            raise InvalidInput(f"{path}.start is required")
        begin = parse_time(start, f"{path}.start")
        end_value = o.get("end")
        end = parse_time(end_value, f"{path}.end") if end_value is not None else None
        o.done()
        if end is not None and end < begin:
            raise InvalidInput(f"{path}.end is before its start")
        return cls(begin, end)


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
        o = _Obj(value, path)
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
        o = _Obj(value, path)
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
            c = _Obj(item, f"{cc.path('certificates')}[{i}]")
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
        o = _Obj(_load(data, "trusted root"), path)
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


# --- signing config v0.2 (protocols.md §7) ---------------------------------------------------


@dataclass(frozen=True)
class Service:
    """A service endpoint: base URL (full endpoint for TSAs), API version, validity, operator."""

    url: str
    major_api_version: int
    valid_for: ValidityPeriod
    operator: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "url": self.url,
            "majorApiVersion": self.major_api_version,
            "validFor": self.valid_for.to_json(),
        }
        if self.operator:
            out["operator"] = self.operator
        return out

    @classmethod
    def from_json(cls, value: Any, path: str) -> Service:
        o = _Obj(value, path)
        url = o.text("url")
        version = o.get("majorApiVersion")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise InvalidInput(f"{o.path('majorApiVersion')} must be a non-negative integer")
        valid_for = ValidityPeriod.parse(o.obj("validFor"), o.path("validFor"))
        operator = o.text("operator", required=False)
        o.done()
        return cls(url, version, valid_for, operator)


@dataclass(frozen=True)
class ServiceSelector:
    """``ServiceConfiguration``: ``ALL`` (default), ``ANY`` (first one) or ``EXACT`` ``count``."""

    selector: str = "ALL"
    count: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"selector": self.selector}
        if self.count:
            out["count"] = self.count
        return out

    @classmethod
    def from_json(cls, value: Any, path: str) -> ServiceSelector:
        o = _Obj(value, path)
        selector = o.text("selector", required=False, default="ALL")
        if selector not in ("ALL", "ANY", "EXACT"):
            raise InvalidInput(f"{o.path('selector')} must be ALL, ANY or EXACT")
        count = o.get("count") or 0
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise InvalidInput(f"{o.path('count')} must be a non-negative integer")
        o.done()
        if selector == "EXACT" and count < 1:
            raise InvalidInput(f"{o.path('count')} is required with selector EXACT")
        return cls(selector, count)


@dataclass(frozen=True)
class SigningConfig:
    """``SigningConfig`` v0.2: where to sign (protocols.md §7)."""

    ca_urls: tuple[Service, ...]
    oidc_urls: tuple[Service, ...]
    rekor_tlog_urls: tuple[Service, ...]
    tsa_urls: tuple[Service, ...]
    rekor_tlog_config: ServiceSelector = ServiceSelector()
    tsa_config: ServiceSelector = ServiceSelector()
    media_type: str = SIGNING_CONFIG_V02

    def to_json(self) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "caUrls": [s.to_json() for s in self.ca_urls],
            "oidcUrls": [s.to_json() for s in self.oidc_urls],
            "rekorTlogUrls": [s.to_json() for s in self.rekor_tlog_urls],
            "tsaUrls": [s.to_json() for s in self.tsa_urls],
            "rekorTlogConfig": self.rekor_tlog_config.to_json(),
            "tsaConfig": self.tsa_config.to_json(),
        }

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any], path: str = "") -> SigningConfig:
        o = _Obj(_load(data, "signing config"), path)
        media_type = o.text("mediaType")
        if media_type != SIGNING_CONFIG_V02:
            raise InvalidInput(f"{o.path('mediaType')} {media_type!r} is not signing config v0.2")

        def services(key: str) -> tuple[Service, ...]:
            return tuple(
                Service.from_json(v, f"{o.path(key)}[{i}]") for i, v in enumerate(o.items(key))
            )

        ca, oidc, rekor, tsa = (
            services("caUrls"),
            services("oidcUrls"),
            services("rekorTlogUrls"),
            services("tsaUrls"),
        )
        rc = o.get("rekorTlogConfig")
        tc = o.get("tsaConfig")
        rekor_cfg = ServiceSelector.from_json(rc, o.path("rekorTlogConfig")) if rc else None
        tsa_cfg = ServiceSelector.from_json(tc, o.path("tsaConfig")) if tc else None
        o.done()
        return cls(
            ca, oidc, rekor, tsa, rekor_cfg or ServiceSelector(), tsa_cfg or ServiceSelector()
        )


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
        o = _Obj(_load(data, "client trust config"), "")
        media_type = o.text("mediaType")
        if media_type != CLIENT_TRUST_CONFIG_V01:
            raise InvalidInput(f"mediaType {media_type!r} is not a client trust config v0.1")
        root = TrustedRoot.from_json(o.get("trustedRoot") or {}, "trustedRoot")
        sc = o.get("signingConfig", "signing_config")
        signing = SigningConfig.from_json(sc, "signingConfig") if sc is not None else None
        o.done()
        return cls(root, signing, media_type)
