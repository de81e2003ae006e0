"""The registry HTTP API (OCI distribution-spec v1.1) as far as signatures need it.

* Manifests travel as exact bytes: a digest is always computed over the bytes received or sent,
  never over re-serialised JSON (a registry that serves other bytes for a digest is refused).
* Blobs are uploaded monolithically (``POST`` then ``PUT ?digest=``) unless already present.
* Referrers: ``GET /v2/<repo>/referrers/<digest>`` (paginated); a 404/400 falls back to the
  referrers tag schema, an index tagged ``sha256-<hex>``. Writing to that index is a
  read-merge-write with ``If-Match`` (which Docker distribution 2.8 ignores), so every writer
  re-reads after writing and merges again until its entry stays put (concurrent signers).

Auth, TLS and retries are :class:`keyless.oci.transport.RegistryTransport`; descriptors and
manifests :mod:`keyless.oci.content`; errors :mod:`keyless.oci.errors`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from random import SystemRandom
from urllib.parse import urljoin, urlsplit

import httpx

from keyless.errors import shown
from keyless.oci.content import (
    ACCEPT,
    MANIFEST_TYPES,
    MAX_BLOB,
    OCI_INDEX,
    Descriptor,
    Manifest,
    check_reference,
    media_type_of,
    referrers_tag,
    sha256_digest,
)
from keyless.oci.errors import PreconditionFailed, RegistryError, RegistryNotFound
from keyless.oci.reference import is_digest
from keyless.oci.transport import RegistryTransport

__all__ = ["RegistryClient"]

MAX_REFERRER_PAGES = 100
#: writers of the fallback index: merge rounds, and the pause before re-reading what was written
INDEX_ROUNDS = 12
INDEX_SETTLE = (0.05, 0.25)
_jitter = SystemRandom()


def _next_link(response: httpx.Response, base: str) -> str | None:
    link = response.headers.get("Link")
    if not link:
        return None
    match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', link)
    return urljoin(base, match.group(1)) if match else None


class RegistryClient(RegistryTransport):
    """One registry (``host[:port]``); reuse it for several repositories."""

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest or index at a tag or digest, bytes as stored."""
        check_reference(reference)
        what = f"manifest {reference}"
        response = self.request(
            "GET",
            repository,
            f"/v2/{repository}/manifests/{reference}",
            what=what,
            headers={"Accept": ACCEPT},
        )
        if response.status_code != 200:
            raise self.fail(response, repository, what)
        data = response.content
        digest = sha256_digest(data)
        if is_digest(reference) and digest != reference:
            raise RegistryError(
                f"the registry {self.registry} served other bytes for {reference} in {repository}"
            )
        media_type = media_type_of(response.headers.get("Content-Type"))
        if media_type not in MANIFEST_TYPES:
            try:
                inner = json.loads(data).get("mediaType")
            except (ValueError, AttributeError, RecursionError):
                inner = None
            if inner not in MANIFEST_TYPES:
                raise RegistryError(f"{what} in {repository} is not an OCI or Docker v2 manifest")
            media_type = inner
        return Manifest(data, media_type, digest)

    def find_manifest(self, repository: str, reference: str) -> Manifest | None:
        """Like :meth:`get_manifest`, but ``None`` for a 404."""
        try:
            return self.get_manifest(repository, reference)
        except RegistryNotFound:
            return None

    def put_manifest(
        self,
        repository: str,
        reference: str,
        data: bytes,
        media_type: str,
        *,
        if_match: str | None = None,
    ) -> httpx.Response:
        """PUT the exact bytes; ``Content-Type`` is the body's media type (2.8 insists)."""
        check_reference(reference)
        what = f"upload of manifest {reference}"
        headers = {"Content-Type": media_type}
        if if_match:
            headers["If-Match"] = if_match
        response = self.request(
            "PUT",
            repository,
            f"/v2/{repository}/manifests/{reference}",
            push=True,
            what=what,
            headers=headers,
            content=data,
        )
        if response.status_code == 412:
            raise PreconditionFailed(f"{what} in {repository} lost a race (HTTP 412)")
        if response.status_code not in (200, 201):
            raise self.fail(response, repository, what)
        echoed = response.headers.get("Docker-Content-Digest")
        if is_digest(reference) and echoed and echoed != reference:
            raise RegistryError(f"the registry {self.registry} stored {reference} as {echoed}")
        return response

    # --- blobs --------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> bool:
        what = f"blob {digest}"
        response = self.request(
            "HEAD", repository, f"/v2/{repository}/blobs/{digest}", what=what, limit=0
        )
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self.fail(response, repository, what)

    def upload_blob(self, repository: str, data: bytes, media_type: str) -> Descriptor:
        """Upload ``data`` (monolithic) unless the registry has it; its descriptor."""
        digest = sha256_digest(data)
        descriptor = Descriptor(media_type, digest, len(data))
        if self.blob_exists(repository, digest):
            return descriptor
        what = f"upload of blob {digest}"
        start = self.request(
            "POST", repository, f"/v2/{repository}/blobs/uploads/", push=True, what=what
        )
        if start.status_code != 202 or not start.headers.get("Location"):
            raise self.fail(start, repository, what)
        location = urljoin(self.base + "/", start.headers["Location"])
        location += ("&" if urlsplit(location).query else "?") + f"digest={digest}"
        done = self.request(
            "PUT",
            repository,
            location,
            push=True,
            what=what,
            headers={"Content-Type": "application/octet-stream"},
            content=data,
        )
        if done.status_code not in (201, 204):
            raise self.fail(done, repository, what)
        return descriptor

    def get_blob(self, repository: str, digest: str, *, limit: int = MAX_BLOB) -> bytes:
        """A (small) blob, checked against its digest; one redirect to storage is followed."""
        if not is_digest(digest):
            raise RegistryError(f"{shown(digest)} is not a sha256 digest")
        what = f"blob {digest}"
        url = f"{self.base}/v2/{repository}/blobs/{digest}"
        response = self.request("GET", repository, url, what=what, limit=limit)
        for _ in range(3):
            if response.status_code not in (301, 302, 303, 307, 308):
                break
            url = urljoin(url, response.headers.get("Location", ""))
            response = self.request("GET", repository, url, what=what, limit=limit)
        if response.status_code != 200:
            raise self.fail(response, repository, what)
        if sha256_digest(response.content) != digest:
            raise RegistryError(f"the registry {self.registry} served other bytes for {what}")
        return response.content

    # --- referrers ----------------------------------------------------------------------------

    def referrers_api(self, repository: str, digest: str) -> list[Descriptor] | None:
        """The referrers API's answer, or ``None`` when the registry lacks it (404/400)."""
        what = f"referrers of {digest}"
        url: str | None = f"{self.base}/v2/{repository}/referrers/{digest}"
        found: list[Descriptor] = []
        pages = 0
        while url is not None:
            response = self.request(
                "GET", repository, url, what=what, headers={"Accept": OCI_INDEX}
            )
            if response.status_code in (400, 404) and pages == 0:
                return None
            if response.status_code != 200:
                raise self.fail(response, repository, what)
            found.extend(self._index_entries(response.content, what))
            pages += 1
            url = _next_link(response, url)
            if pages >= MAX_REFERRER_PAGES and url is not None:
                raise RegistryError(f"{what} in {repository} span more than {pages} pages")
        return found

    def _index_entries(self, data: bytes, what: str) -> list[Descriptor]:
        try:
            index = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise RegistryError(f"{what}: the index is not JSON") from exc
        if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
            raise RegistryError(f"{what}: the index has no manifests list")
        return [
            Descriptor.from_json(d, f"{what}: manifests[{i}]")
            for i, d in enumerate(index.get("manifests") or [])
        ]

    def referrers_fallback(self, repository: str, digest: str) -> tuple[list[Descriptor], str]:
        """The referrers tag schema index (entries, ETag); no index or a non-index: none."""
        manifest, etag = self._fallback_index(repository, digest)
        if manifest is None:
            return [], etag
        return self._index_entries(manifest.data, f"referrers index {referrers_tag(digest)}"), etag

    def _fallback_index(self, repository: str, digest: str) -> tuple[Manifest | None, str]:
        tag = referrers_tag(digest)
        what = f"referrers index {tag}"
        response = self.request(
            "GET",
            repository,
            f"/v2/{repository}/manifests/{tag}",
            what=what,
            headers={"Accept": OCI_INDEX},
        )
        if response.status_code == 404:
            return None, ""
        if response.status_code != 200:
            raise self.fail(response, repository, what)
        if media_type_of(response.headers.get("Content-Type")) != OCI_INDEX:
            return None, ""
        data = response.content
        return Manifest(data, OCI_INDEX, sha256_digest(data)), response.headers.get("ETag", "")

    def referrers(
        self, repository: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Every referrer of ``digest`` (API, else the tag schema), optionally of one type."""
        found = self.referrers_api(repository, digest)
        if found is None:
            found, _ = self.referrers_fallback(repository, digest)
        unique = list({d.digest: d for d in found}.values())
        if artifact_type is not None:
            unique = [d for d in unique if d.artifact_type == artifact_type]
        return unique

    def push_referrer(
        self, repository: str, manifest: Manifest, subject: str, artifact_type: str
    ) -> None:
        """PUT a manifest whose ``subject`` is ``subject`` (by digest) and make it findable:
        if the registry does not list it in its referrers API, add it to the fallback index."""
        response = self.put_manifest(
            repository, manifest.digest, manifest.data, manifest.media_type
        )
        if response.headers.get("OCI-Subject") == subject:
            listed = self.referrers_api(repository, subject)
            if listed is not None and any(d.digest == manifest.digest for d in listed):
                return
        annotations = manifest.json.get("annotations")
        entry = Descriptor(
            manifest.media_type,
            manifest.digest,
            len(manifest.data),
            artifact_type,
            dict(annotations) if isinstance(annotations, dict) else {},
        )
        self.add_to_fallback_index(repository, subject, entry)

    def add_to_fallback_index(self, repository: str, subject: str, entry: Descriptor) -> None:
        """Merge ``entry`` into the ``sha256-<hex>`` index until it is seen there twice in a
        row, a pause apart: a writer that read before our PUT and wrote after it would have
        dropped it, and then we merge again (``If-Match`` is sent but 2.8 ignores it)."""
        tag = referrers_tag(subject)
        confirmed = 0
        for _ in range(INDEX_ROUNDS):
            current, etag = self._fallback_index(repository, subject)
            entries = self._index_entries(current.data, tag) if current is not None else []
            if any(d.digest == entry.digest for d in entries):
                confirmed += 1
                if confirmed >= 2:
                    return
                self._sleep(_jitter.uniform(*INDEX_SETTLE))
                continue
            confirmed = 0
            index = {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [d.to_json() for d in [*entries, entry]],
            }
            data = json.dumps(index, separators=(",", ":")).encode()
            try:
                self.put_manifest(repository, tag, data, OCI_INDEX, if_match=etag or None)
            except PreconditionFailed:
                continue
            self._sleep(_jitter.uniform(*INDEX_SETTLE))
        raise RegistryError(
            f"could not add {entry.digest} to the referrers index {tag} in {repository} on "
            f"{self.registry}: other writers kept replacing it"
        )

    def iter_index_children(self, manifest: Manifest) -> Iterator[Descriptor]:
        """The platform manifests of an index."""
        for i, d in enumerate(manifest.json.get("manifests") or []):
            yield Descriptor.from_json(d, f"index {manifest.digest}: manifests[{i}]")
