"""What Sigstore tools store next to an image, as bytes (no signing or verifying here).

Bundle format (cosign 3, ``actions/attest`` through ``@sigstore/oci``): one OCI 1.1 artifact
manifest per bundle, ``artifactType`` = the bundle media type, an empty config, exactly one layer
holding the bundle JSON, ``subject`` = the signed manifest, and the annotations
``dev.sigstore.bundle.content`` / ``dev.sigstore.bundle.predicateType``. A signature is a DSSE
in-toto statement whose predicate type is :data:`SIGN_PREDICATE_TYPE` and whose only subject is
the manifest digest; an attestation carries the user's predicate.

Legacy format (cosign 2): the tag ``sha256-<hex>.sig`` (``.att``) holds an image manifest whose
every layer is one signature: a simple-signing payload (``.att``: a DSSE envelope) with the
signature, certificate, chain, Rekor SET and RFC 3161 annotations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from keyless.oci.content import OCI_MANIFEST, Descriptor, Manifest, sha256_digest
from keyless.oci.errors import RegistryError

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_PREFIX = "application/vnd.dev.sigstore.bundle"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_CONTENT = "dev.sigstore.bundle.content"
ANNOTATION_PREDICATE = "dev.sigstore.bundle.predicateType"

# --- legacy (cosign 2.x) -------------------------------------------------------------------------
SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
OCI_CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
SIMPLE_SIGNING_TYPE = "cosign container image signature"
ANN_SIGNATURE = "dev.cosignproject.cosign/signature"
ANN_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANN_CHAIN = "dev.sigstore.cosign/chain"
ANN_BUNDLE = "dev.sigstore.cosign/bundle"
ANN_TIMESTAMP = "dev.sigstore.cosign/rfc3161timestamp"
ANN_PREDICATE_TYPE = "predicateType"
MAX_LEGACY_LAYERS = 1000


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def created_now() -> str:
    """RFC 3339 UTC with seconds, as cosign writes ``org.opencontainers.image.created``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def statement(
    name: str,
    digest: str,
    predicate_type: str,
    predicate: Mapping[str, Any],
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """An in-toto Statement v1 about one manifest digest. The subject is named after the
    image's repository as ``actions/attest`` does (cosign leaves the name out, which in-toto
    parsers such as sigstore-python's refuse); verifiers match the digest only."""
    algorithm, _, encoded = digest.partition(":")
    subject: dict[str, Any] = {"name": name, "digest": {algorithm: encoded}}
    if annotations:
        subject["annotations"] = dict(annotations)
    return _compact(
        {
            "_type": STATEMENT_V1,
            "subject": [subject],
            "predicateType": predicate_type,
            "predicate": dict(predicate),
        }
    )


def bundle_referrer(
    subject: Descriptor,
    config: Descriptor,
    layer: Descriptor,
    predicate_type: str,
    created: str | None = None,
) -> Manifest:
    """The artifact manifest that stores one bundle as a referrer of ``subject``."""
    data = _compact(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_MEDIA_TYPE,
            "config": config.to_json(),
            "layers": [layer.to_json()],
            "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
            "annotations": {
                ANNOTATION_CREATED: created or created_now(),
                ANNOTATION_CONTENT: "dsse-envelope",
                ANNOTATION_PREDICATE: predicate_type,
            },
        }
    )
    return Manifest(data, OCI_MANIFEST, sha256_digest(data))


@dataclass(frozen=True)
class BundleReferrer:
    """A referrer manifest read back: the bundle layer, and what it claims (unverified)."""

    digest: str
    layer: Descriptor
    predicate_type: str | None


def read_bundle_referrer(manifest: Manifest, subject: str) -> BundleReferrer | None:
    """The bundle layer of a referrer manifest, or ``None`` if it does not hold a bundle.

    As cosign: exactly one layer whose media type starts with the bundle media type. The
    manifest must name ``subject`` (a referrers index is not trusted to say so).
    """
    if manifest.media_type != OCI_MANIFEST:
        return None
    body = manifest.json
    layers = body.get("layers")
    if not isinstance(layers, list) or len(layers) != 1:
        return None
    try:
        layer = Descriptor.from_json(layers[0], f"referrer {manifest.digest}: layers[0]")
    except RegistryError:  # a malformed stranger among the referrers is skipped, not fatal
        return None
    if not layer.media_type.startswith(BUNDLE_MEDIA_PREFIX):
        return None
    named = body.get("subject")
    if not isinstance(named, dict) or named.get("digest") != subject:
        return None
    annotations = body.get("annotations")
    predicate = annotations.get(ANNOTATION_PREDICATE) if isinstance(annotations, dict) else None
    return BundleReferrer(manifest.digest, layer, predicate if isinstance(predicate, str) else None)


# --- legacy --------------------------------------------------------------------------------------


def legacy_tag(digest: str, suffix: str) -> str:
    """``sha256-<hex>.sig`` / ``.att`` in the image's repository."""
    return digest.replace(":", "-", 1) + "." + suffix


def simple_signing_payload(
    docker_reference: str, digest: str, optional: Mapping[str, str] | None = None
) -> bytes:
    """cosign's payload, byte for byte as Go's ``encoding/json`` writes it (struct order, no
    spaces, ``optional`` null without annotations)."""
    return _compact(
        {
            "critical": {
                "identity": {"docker-reference": docker_reference},
                "image": {"docker-manifest-digest": digest},
                "type": SIMPLE_SIGNING_TYPE,
            },
            "optional": dict(optional) if optional else None,
        }
    )


def legacy_config(diff_ids: list[str]) -> bytes:
    """The config go-containerregistry writes for a signature image (verifiers never read it)."""
    return _compact(
        {
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"} for _ in diff_ids],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        }
    )


def legacy_manifest(config: Descriptor, layers: list[Descriptor]) -> Manifest:
    """The ``.sig`` / ``.att`` image manifest; each layer descriptor carries its annotations."""
    data = _compact(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
    )
    return Manifest(data, OCI_MANIFEST, sha256_digest(data))


def legacy_layers(manifest: Manifest) -> list[Descriptor]:
    """The signature layers of a ``.sig`` / ``.att`` manifest (at most 1000, as cosign)."""
    layers = manifest.json.get("layers")
    if not isinstance(layers, list):
        return []
    return [
        Descriptor.from_json(d, f"{manifest.digest}: layers[{i}]")
        for i, d in enumerate(layers[:MAX_LEGACY_LAYERS])
    ]
