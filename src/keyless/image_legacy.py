"""cosign 2.x image signatures: the ``sha256-<hex>.sig`` / ``.att`` tags, both directions.

Writing: the simple-signing payload (or, for ``.att``, the DSSE envelope exactly as sent to the
log) becomes one more layer of the tag's manifest, annotated as cosign does: signature (``""``
for attestations), leaf certificate, chain (``""``), the Rekor v1 SET bundle and the RFC 3161
timestamp (signatures only; cosign checks an attestation's timestamp over the payload).

Reading: each layer is turned back into a Sigstore bundle and verified by the ordinary verifier.
The annotations carry only the log's SET, and the verifier insists on an inclusion proof, so the
entry is fetched from the trusted log (its URL from the trusted root, by the annotation's log ID)
and must match the annotation's body, index and time. The legacy format therefore needs a Rekor
v1 log to sign and the network to verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from keyless.errors import Error, InvalidInput, VerificationError, shown
from keyless.formats.bundle import (
    BUNDLE_V01,
    Bundle,
    HashOutput,
    MessageSignature,
    TransparencyLogEntry,
    VerificationMaterial,
)
from keyless.formats.dsse import Envelope
from keyless.image_statements import VerifiedStatement, check_statement_kind
from keyless.oci.content import MAX_BLOB, Descriptor
from keyless.oci.registry import RegistryClient
from keyless.oci.sigstore import (
    ANN_BUNDLE,
    ANN_CERTIFICATE,
    ANN_CHAIN,
    ANN_PREDICATE_TYPE,
    ANN_SIGNATURE,
    ANN_TIMESTAMP,
    DSSE_MEDIA_TYPE,
    OCI_CONFIG_MEDIA_TYPE,
    SIMPLE_SIGNING_MEDIA_TYPE,
    SIMPLE_SIGNING_TYPE,
    legacy_config,
    legacy_layers,
    legacy_manifest,
    legacy_tag,
    simple_signing_payload,
)

LOG_TIMEOUT = 30.0
#: ``log_id (raw key ID) → Rekor v1 base URL`` from the trusted root
LogUrls = Mapping[bytes, str]
VerifyFn = Callable[[Bundle, bytes], Any]


class LegacyFormatError(VerificationError):
    """A legacy signature layer is malformed or does not match the image."""


# --- writing -------------------------------------------------------------------------------------


def _annotations(bundle: Bundle, signature: str, *, timestamp: bool) -> dict[str, str]:
    material = bundle.verification_material
    leaf = x509.load_der_x509_certificate(material.certificates[0])
    out = {
        ANN_SIGNATURE: signature,
        ANN_CERTIFICATE: leaf.public_bytes(serialization.Encoding.PEM).decode(),
        ANN_CHAIN: "",
    }
    entry = material.tlog_entries[0]
    if entry.inclusion_promise is None:
        raise InvalidInput(
            "the legacy format stores the log's signed entry timestamp, which only a Rekor v1 "
            "log gives: sign with --rekor-version 1, or use the bundle format"
        )
    out[ANN_BUNDLE] = json.dumps(
        {
            "SignedEntryTimestamp": base64.b64encode(entry.inclusion_promise).decode(),
            "Payload": {
                "body": base64.b64encode(entry.canonicalized_body).decode(),
                "integratedTime": entry.integrated_time,
                "logIndex": entry.log_index,
                "logID": entry.log_id.hex(),
            },
        },
        separators=(",", ":"),
    )
    if timestamp and material.rfc3161_timestamps:
        out[ANN_TIMESTAMP] = json.dumps(
            {"SignedRFC3161Timestamp": base64.b64encode(material.rfc3161_timestamps[0]).decode()},
            separators=(",", ":"),
        )
    return out


def _append_layer(
    registry: RegistryClient, target: Any, suffix: str, layer: Descriptor, data: bytes
) -> str:
    """Add one annotated layer to the ``.sig`` / ``.att`` manifest (read-modify-write, as
    cosign; an identical layer is not added twice)."""
    repo = target.reference.repository
    tag = legacy_tag(target.digest, suffix)
    existing = registry.find_manifest(repo, tag)
    layers = legacy_layers(existing) if existing is not None else []
    registry.upload_blob(repo, data, layer.media_type)
    if not any(d.digest == layer.digest and d.annotations == layer.annotations for d in layers):
        layers.append(layer)
    config_data = legacy_config([d.digest for d in layers])
    config = registry.upload_blob(repo, config_data, OCI_CONFIG_MEDIA_TYPE)
    manifest = legacy_manifest(config, layers)
    registry.put_manifest(repo, tag, manifest.data, manifest.media_type)
    return tag


def store_signature(
    registry: RegistryClient,
    target: Any,
    sign_payload: Callable[[bytes], Bundle],
    optional: Mapping[str, str] | None,
) -> str:
    """Sign cosign's simple-signing payload for the target and append it to ``.sig``."""
    payload = simple_signing_payload(target.reference.name, target.digest, optional)
    bundle = sign_payload(payload)
    if bundle.message_signature is None:
        raise InvalidInput("the signer returned a DSSE bundle for a simple-signing payload")
    signature = base64.b64encode(bundle.message_signature.signature).decode()
    annotations = _annotations(bundle, signature, timestamp=True)
    layer = Descriptor(
        SIMPLE_SIGNING_MEDIA_TYPE,
        "sha256:" + hashlib.sha256(payload).hexdigest(),
        len(payload),
        annotations=annotations,
    )
    return _append_layer(registry, target, "sig", layer, payload)


def envelope_bytes(envelope: Envelope) -> bytes:
    """The envelope as the signer sent it to the log (dsse 0.0.1 hashes these very bytes)."""
    return json.dumps(envelope.to_json()).encode()


def store_attestation(
    registry: RegistryClient, target: Any, bundle: Bundle, predicate_type: str
) -> str:
    """Append a DSSE attestation to ``.att``."""
    if bundle.dsse_envelope is None:
        raise InvalidInput("an attestation needs a DSSE bundle")
    data = envelope_bytes(bundle.dsse_envelope)
    annotations = _annotations(bundle, "", timestamp=False)
    annotations[ANN_PREDICATE_TYPE] = predicate_type
    layer = Descriptor(
        DSSE_MEDIA_TYPE,
        "sha256:" + hashlib.sha256(data).hexdigest(),
        len(data),
        annotations=annotations,
    )
    return _append_layer(registry, target, "att", layer, data)


# --- reading -------------------------------------------------------------------------------------


def _leaf_der(annotations: Mapping[str, str]) -> bytes:
    pem = annotations.get(ANN_CERTIFICATE, "")
    if not pem:
        raise LegacyFormatError(f"the layer has no {ANN_CERTIFICATE} annotation")
    try:
        # only the first PEM block counts, as in cosign
        leaf = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise LegacyFormatError(
            f"the {ANN_CERTIFICATE} annotation is not a PEM certificate"
        ) from exc
    return leaf.public_bytes(serialization.Encoding.DER)


def _rekor_bundle(annotations: Mapping[str, str]) -> dict[str, Any]:
    text = annotations.get(ANN_BUNDLE, "")
    if not text:
        raise LegacyFormatError(
            f"the layer has no {ANN_BUNDLE} annotation (a log lookup by signature is not supported)"
        )
    try:
        value = json.loads(text)
        payload = value["Payload"]
        parsed = {
            "set": base64.b64decode(value["SignedEntryTimestamp"], validate=True),
            "body": base64.b64decode(payload["body"], validate=True),
            "integratedTime": int(payload["integratedTime"]),
            "logIndex": int(payload["logIndex"]),
            "logID": bytes.fromhex(payload["logID"]),
        }
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise LegacyFormatError(f"the {ANN_BUNDLE} annotation is malformed") from exc
    return parsed


def _timestamps(annotations: Mapping[str, str]) -> tuple[bytes, ...]:
    text = annotations.get(ANN_TIMESTAMP, "")
    if not text:
        return ()
    try:
        return (base64.b64decode(json.loads(text)["SignedRFC3161Timestamp"], validate=True),)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise LegacyFormatError(f"the {ANN_TIMESTAMP} annotation is malformed") from exc


def fetch_log_entry(rekor: Mapping[str, Any], log_urls: LogUrls) -> TransparencyLogEntry:
    """The entry with its inclusion proof, fetched from the trusted log the SET names."""
    import httpx

    from keyless.sign import entry_from_rekor_v1

    base = log_urls.get(rekor["logID"])
    if base is None:
        raise LegacyFormatError(
            f"the signature's log {rekor['logID'].hex()[:16]}… is not in the trusted root"
        )
    url = base.rstrip("/") + "/api/v1/log/entries"
    try:
        response = httpx.get(url, params={"logIndex": rekor["logIndex"]}, timeout=LOG_TIMEOUT)
    except httpx.HTTPError as exc:
        raise LegacyFormatError(f"the transparency log at {base} is unreachable: {exc}") from exc
    if response.status_code != 200 or len(response.content) > MAX_BLOB:
        raise LegacyFormatError(
            f"the transparency log at {base} has no entry {rekor['logIndex']} "
            f"(HTTP {response.status_code})"
        )
    try:
        body = response.json()
        (entry,) = body.values()
        fetched = entry_from_rekor_v1(entry)
    except (ValueError, TypeError, KeyError, AttributeError, Error) as exc:
        raise LegacyFormatError(f"the transparency log at {base} answered unreadably") from exc
    if (
        fetched.canonicalized_body != rekor["body"]
        or fetched.integrated_time != rekor["integratedTime"]
        or fetched.log_index != rekor["logIndex"]
    ):
        raise LegacyFormatError("the log's entry differs from the signature's Rekor bundle")
    return TransparencyLogEntry(
        log_index=fetched.log_index,
        log_id=rekor["logID"],
        kind=fetched.kind,
        version=fetched.version,
        integrated_time=fetched.integrated_time,
        canonicalized_body=fetched.canonicalized_body,
        inclusion_promise=rekor["set"],
        inclusion_proof=fetched.inclusion_proof,
    )


def _material(annotations: Mapping[str, str], log_urls: LogUrls) -> VerificationMaterial:
    leaf = _leaf_der(annotations)
    entry = fetch_log_entry(_rekor_bundle(annotations), log_urls)
    return VerificationMaterial(
        certificates=(leaf,),
        tlog_entries=(entry,),
        rfc3161_timestamps=_timestamps(annotations),
        chain_form=True,
    )


def _check_payload(payload: bytes, digest: str, optional: Mapping[str, str]) -> None:
    """cosign's claim check: the simple-signing payload names this manifest digest."""
    try:
        value = json.loads(payload)
        critical = value["critical"]
        kind = critical["type"]
        named = critical["image"]["docker-manifest-digest"]
        extra = value.get("optional") or {}
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise LegacyFormatError("the payload is not a simple-signing document") from exc
    if kind != SIMPLE_SIGNING_TYPE:
        raise LegacyFormatError(f"the payload's type is {shown(kind)}, not {SIMPLE_SIGNING_TYPE}")
    if named != digest:
        raise LegacyFormatError(f"the payload signs {shown(named)}, not {digest}")
    if not isinstance(extra, dict) or any(extra.get(k) != v for k, v in optional.items()):
        raise LegacyFormatError("the signature's annotations do not match the ones required")


def _layers(registry: RegistryClient, target: Any, suffix: str) -> list[Descriptor]:
    tag = legacy_tag(target.digest, suffix)
    manifest = registry.find_manifest(target.reference.repository, tag)
    return legacy_layers(manifest) if manifest is not None else []


def verify_signatures(
    registry: RegistryClient,
    target: Any,
    verify: VerifyFn,
    *,
    optional: Mapping[str, str],
    reasons: list[str],
    log_urls: LogUrls,
) -> list[VerifiedStatement]:
    """Every verifying layer of ``sha256-<hex>.sig`` (failures appended to ``reasons``)."""
    tag = legacy_tag(target.digest, "sig")
    found: list[VerifiedStatement] = []
    for layer in _layers(registry, target, "sig"):
        where = f"{tag}#{layer.digest}"
        if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE:
            continue
        try:
            payload = registry.get_blob(target.reference.repository, layer.digest)
            _check_payload(payload, target.digest, optional)
            signature = layer.annotations.get(ANN_SIGNATURE)
            if not signature:
                raise LegacyFormatError(f"the layer has no {ANN_SIGNATURE} annotation")
            bundle = Bundle(
                media_type=BUNDLE_V01,
                verification_material=_material(layer.annotations, log_urls),
                message_signature=MessageSignature(
                    base64.b64decode(signature, validate=True),
                    HashOutput("SHA2_256", hashlib.sha256(payload).digest()),
                ),
            )
            result = verify(bundle, hashlib.sha256(payload).digest())
        except (Error, ValueError) as exc:
            reasons.append(f"{where}: {' '.join(str(exc).split())}")
            continue
        found.append(VerifiedStatement(target.reference, "legacy", where, result, None))
    return found


def verify_attestations(
    registry: RegistryClient,
    target: Any,
    verify: VerifyFn,
    *,
    predicate_type: str | None,
    reasons: list[str],
    log_urls: LogUrls,
) -> list[VerifiedStatement]:
    """Every verifying layer of ``sha256-<hex>.att`` whose statement is about the image."""
    tag = legacy_tag(target.digest, "att")
    found: list[VerifiedStatement] = []
    digest_bytes = bytes.fromhex(target.digest.partition(":")[2])
    for layer in _layers(registry, target, "att"):
        where = f"{tag}#{layer.digest}"
        if layer.media_type != DSSE_MEDIA_TYPE:
            continue
        try:
            data = registry.get_blob(target.reference.repository, layer.digest)
            envelope = Envelope.from_json(json.loads(data), "legacy attestation")
            bundle = Bundle(
                media_type=BUNDLE_V01,
                verification_material=_material(layer.annotations, log_urls),
                dsse_envelope=envelope,
            )
            result = verify(bundle, digest_bytes)
            statement = getattr(result, "statement", None)
            check_statement_kind(statement, predicate_type=predicate_type, attestation=True)
        except (Error, ValueError, RecursionError) as exc:
            reasons.append(f"{where}: {' '.join(str(exc).split())}")
            continue
        found.append(VerifiedStatement(target.reference, "legacy", where, result, statement))
    return found


def log_urls_of(trusted_root: Any) -> dict[bytes, str]:
    """Rekor v1 log URLs by log ID, from a trusted root."""
    return {log.log_id: log.base_url for log in getattr(trusted_root, "tlogs", ())}
