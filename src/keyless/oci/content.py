"""What a registry stores, as signatures need it: media types, descriptors and manifests.

A manifest is kept as the exact bytes the registry served or will be sent, with the digest
computed over those bytes (never over re-serialised JSON). Descriptors read from a registry are
checked before their digests reach a URL path.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from keyless.errors import shown
from keyless.oci.errors import RegistryError
from keyless.oci.reference import is_digest, is_tag

__all__ = [
    "ACCEPT",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "MAX_BLOB",
    "MAX_MANIFEST",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Descriptor",
    "Manifest",
    "check_reference",
    "media_type_of",
    "referrers_tag",
    "sha256_digest",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_LIST)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
#: 2.8 hides OCI manifests from a client whose Accept does not name them
ACCEPT = ", ".join(MANIFEST_TYPES)

MAX_MANIFEST = 4 << 20  # the distribution-spec's recommended manifest limit
MAX_BLOB = 32 << 20  # bundles and signature payloads, not image layers
MAX_REFERRER_PAGES = 100

#: end up in URL paths, so nothing else is accepted
_DIGEST_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


def check_reference(reference: str) -> None:
    """A tag or a digest, which may go into a URL path; anything else is refused."""
    if not (is_tag(reference) or is_digest(reference)):
        raise RegistryError(f"{shown(reference)} is not a tag or digest")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, value: Any, what: str = "descriptor") -> Descriptor:
        if not isinstance(value, dict):
            raise RegistryError(f"{what} is not a JSON object")
        media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
        if not isinstance(media_type, str) or not isinstance(digest, str):
            raise RegistryError(f"{what} lacks mediaType or digest")
        if not _DIGEST_GRAMMAR.fullmatch(digest):
            raise RegistryError(f"{what} has an invalid digest {shown(digest)}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RegistryError(f"{what} has no valid size")
        artifact_type = value.get("artifactType")
        annotations = value.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise RegistryError(f"{what} has malformed annotations")
        return cls(
            media_type,
            digest,
            size,
            artifact_type if isinstance(artifact_type, str) else None,
            annotations,
        )


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as stored: its bytes, media type and digest."""

    data: bytes
    media_type: str
    digest: str

    @property
    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.data)
        except (ValueError, RecursionError) as exc:
            raise RegistryError(f"the manifest {self.digest} is not JSON") from exc
        if not isinstance(value, dict):
            raise RegistryError(f"the manifest {self.digest} is not a JSON object")
        return value

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def descriptor(self, artifact_type: str | None = None) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data), artifact_type)


def referrers_tag(digest: str) -> str:
    """The referrers tag schema: ``<alg>-<hex>`` (truncated as the spec says)."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm[:32]}-{encoded[:64]}"


def media_type_of(header: str | None) -> str:
    """The media type of a ``Content-Type`` header, without parameters, lower case."""
    return (header or "").split(";", 1)[0].strip().lower()
