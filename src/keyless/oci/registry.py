"""The registry HTTP API (OCI distribution-spec v1.1) as far as signatures need it.

* Manifests travel as exact bytes: a digest is always computed over the bytes received or sent,
  never over re-serialised JSON (a registry that serves other bytes for a digest is refused).
* Blobs are uploaded monolithically (``POST`` then ``PUT ?digest=``) unless already present.
* Referrers: ``GET /v2/<repo>/referrers/<digest>`` (paginated); a 404/400 falls back to the
  referrers tag schema, an index tagged ``sha256-<hex>``. Writing to that index is a
  read-merge-write with ``If-Match`` (which Docker distribution 2.8 ignores), so every writer
  re-reads after writing and merges again until its entry stays put (concurrent signers).
* Auth: the ``WWW-Authenticate`` challenge on a 401 picks Bearer (token from the realm, with
  Basic credentials or an identity token) or Basic; credentials come from a lookup function
  (:class:`keyless.oci.auth.DockerConfigCredentials` by default).
* Transport: HTTPS with the system CAs plus ``cacert``; plain HTTP only for a loopback registry
  that does not speak TLS, or with ``allow_http``. 429 and 5xx are retried with exponential
  backoff (``Retry-After`` honoured up to a cap); 401/403/404 raise errors that name the
  registry, the repository and what was asked.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from random import SystemRandom
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from keyless.errors import ConfigError, Error, NotFound, Unauthenticated, shown
from keyless.oci.auth import Credentials, DockerConfigCredentials
from keyless.oci.reference import is_digest, is_loopback, is_tag

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
MAX_TOKEN = 1 << 20
RETRIED = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0
#: writers of the fallback index: merge rounds, and the pause before re-reading what was written
INDEX_ROUNDS = 12
INDEX_SETTLE = (0.05, 0.25)
_jitter = SystemRandom()


class RegistryError(Error):
    """The registry refused or failed a request; the message names registry, repository, what."""


class RegistryAuthError(RegistryError, Unauthenticated):
    """401/403: the credentials are missing, wrong, or lack the permission."""


class RegistryNotFound(RegistryError, NotFound):
    """404: the manifest, blob or repository does not exist."""


class PreconditionFailed(RegistryError):
    """412: a conditional write lost a race (``If-Match``)."""


#: image-spec descriptor digest grammar (``algorithm ":" encoded``); digests read from a registry
#: end up in URL paths, so nothing else is accepted
_DIGEST_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


def _check_reference(reference: str) -> None:
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


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _registry_message(response: httpx.Response) -> str:
    """The first ``errors[]`` entry of a registry error body, quoted safely."""
    try:
        body = json.loads(response.content[:65536])
        first = body["errors"][0]
        text = f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
        return f" ({shown(text, 160)})" if text else ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):
        return ""


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…"`` → ``("bearer", {"realm": …, "service": …})``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in re.finditer(r'([A-Za-z_]+)\s*=\s*(?:"([^"]*)"|([^\s,]*))', rest)
    }
    return scheme.lower(), params


def _next_link(response: httpx.Response, base: str) -> str | None:
    link = response.headers.get("Link")
    if not link:
        return None
    match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', link)
    return urljoin(base, match.group(1)) if match else None


CredentialLookup = Callable[[str], Credentials | None]


class RegistryClient:
    """One registry (``host[:port]``); reuse it for several repositories."""

    def __init__(
        self,
        registry: str,
        *,
        credentials: CredentialLookup | None = None,
        cacert: str | None = None,
        allow_http: bool = False,
        retries: int = 4,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self._credentials = credentials if credentials is not None else DockerConfigCredentials()
        self._plain_allowed = allow_http or is_loopback(registry)
        self._retries = retries
        self._sleep = sleep
        context = ssl.create_default_context()
        if cacert:
            try:
                context.load_verify_locations(cafile=cacert)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load the registry CA file {cacert}: {exc}") from exc
        self._http = httpx.Client(
            verify=context,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "keyless"},
            follow_redirects=False,
        )
        self._base: str | None = None
        self._tokens: dict[str, str] = {}
        self._basic: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ----------------------------------------------------------------------------

    @property
    def base(self) -> str:
        """``https://host`` or, for a loopback registry without TLS / ``allow_http``, ``http://``."""
        if self._base is None:
            self._base = self._probe_scheme()
        return self._base

    def _probe_scheme(self) -> str:
        https = f"https://{self.registry}"
        if not self._plain_allowed:
            return https
        try:
            self._http.get(f"{https}/v2/", timeout=10.0)
            return https
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise RegistryError(
                    f"the registry {self.registry} presents a certificate that does not verify "
                    "(give its CA with --registry-cacert)"
                ) from exc
            return f"http://{self.registry}"
        except httpx.HTTPError:
            return f"http://{self.registry}"

    def _same_origin(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self.base)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    def _auth_header(self, scope: str) -> dict[str, str]:
        if scope in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[scope]}"}
        if self._basic is not None:
            return {"Authorization": f"Basic {self._basic}"}
        return {}

    def _authenticate(self, response: httpx.Response, scope: str, what: str) -> bool:
        """Answer a 401's challenge; False when there is nothing more to try."""
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        creds = self._credentials(self.registry)
        if scheme == "basic":
            if creds is None or not creds.username or self._basic is not None:
                return False
            import base64

            self._basic = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            return True
        if scheme != "bearer" or "realm" not in params or scope in self._tokens:
            return False
        self._tokens[scope] = self._fetch_token(params, scope, creds, what)
        return True

    def _fetch_token(
        self, params: dict[str, str], scope: str, creds: Credentials | None, what: str
    ) -> str:
        realm = params["realm"]
        parts = urlsplit(realm)
        if parts.scheme != "https" and not (
            parts.scheme == "http" and (self._plain_allowed or is_loopback(parts.netloc))
        ):
            raise RegistryError(
                f"the registry {self.registry} sends credentials to a token service over "
                f"{shown(parts.scheme or 'no scheme')}, not https; refused"
            )
        query = {"scope": scope}
        if params.get("service"):
            query["service"] = params["service"]
        try:
            if creds is not None and creds.identity_token:
                response = self._http.post(
                    realm,
                    data={
                        **query,
                        "grant_type": "refresh_token",
                        "refresh_token": creds.identity_token,
                        "client_id": "keyless",
                    },
                )
            else:
                auth = (creds.username, creds.password) if creds and creds.username else None
                response = self._http.get(realm, params=query, auth=auth)
        except httpx.HTTPError as exc:
            raise RegistryError(
                f"the token service of {self.registry} is unreachable ({what}): {exc}"
            ) from exc
        if response.status_code in (401, 403):
            hint = "" if creds else " (no credentials for it in the Docker config)"
            raise RegistryAuthError(
                f"the registry {self.registry} refused a token for {scope} ({what}): "
                f"HTTP {response.status_code}{hint}"
            )
        if response.status_code != 200 or len(response.content) > MAX_TOKEN:
            raise RegistryError(
                f"the token service of {self.registry} answered HTTP {response.status_code} "
                f"({what})"
            )
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError) as exc:
            raise RegistryError(f"the token service of {self.registry} sent no JSON") from exc
        if not isinstance(token, str) or not token or not token.isprintable():
            raise RegistryError(f"the token service of {self.registry} sent no token")
        return token

    def _backoff(self, attempt: int, response: httpx.Response | None) -> float:
        delay: float = min(0.5 * 2**attempt, 8.0) * (0.5 + _jitter.random() / 2)
        if response is not None:
            retry_after = response.headers.get("Retry-After", "")
            if retry_after.isdigit():
                delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
        return delay

    def request(
        self,
        method: str,
        repository: str,
        url: str,
        *,
        push: bool = False,
        what: str,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        limit: int = MAX_MANIFEST,
    ) -> httpx.Response:
        """Send with auth and retries; the body is read up to ``limit`` bytes."""
        if not url.startswith(("http://", "https://")):
            url = self.base + url
        scope = f"repository:{repository}:{'pull,push' if push else 'pull'}"
        attempt = 0
        authenticated = False
        while True:
            sent = dict(headers or {})
            if self._same_origin(url):
                sent.update(self._auth_header(scope))
            try:
                response = self._send(
                    method, url=url, headers=sent, content=content, limit=limit, what=what
                )
            except httpx.TransportError as exc:
                if attempt < self._retries:
                    self._sleep(self._backoff(attempt, None))
                    attempt += 1
                    continue
                raise RegistryError(
                    f"the registry {self.registry} is unreachable ({what} in {repository}): {exc}"
                ) from exc
            except httpx.HTTPError as exc:  # e.g. an undecodable body: not worth a retry
                raise RegistryError(
                    f"the registry {self.registry} answered unreadably ({what} in "
                    f"{repository}): {exc}"
                ) from exc
            if response.status_code == 401 and not authenticated:
                authenticated = True
                if self._authenticate(response, scope, what):
                    continue
            if response.status_code in RETRIED and attempt < self._retries:
                self._sleep(self._backoff(attempt, response))
                attempt += 1
                continue
            return response

    def _send(
        self,
        method: str,
        *,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        limit: int,
        what: str,
    ) -> httpx.Response:
        request = self._http.build_request(method, url, headers=headers, content=content)
        response = self._http.send(request, stream=True)
        try:
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > limit:
                    raise RegistryError(
                        f"the registry {self.registry} sent more than {limit} bytes ({what})"
                    )
        finally:
            response.close()
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=bytes(body),
            request=request,
        )

    def fail(self, response: httpx.Response, repository: str, what: str) -> RegistryError:
        """The error for an unexpected answer, naming registry, repository and request."""
        status = response.status_code
        detail = _registry_message(response)
        where = f"repository {repository} on {self.registry}"
        if status == 401:
            has = self._credentials(self.registry) is not None
            hint = "the credentials were refused" if has else "no credentials in the Docker config"
            return RegistryAuthError(f"{where} needs authentication for {what} ({hint}){detail}")
        if status == 403:
            return RegistryAuthError(f"{where} denies {what}: HTTP 403{detail}")
        if status == 404:
            return RegistryNotFound(f"{where} has no {what}: HTTP 404{detail}")
        return RegistryError(f"{where} failed {what}: HTTP {status}{detail}")

    # --- manifests ----------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest or index at a tag or digest, bytes as stored."""
        _check_reference(reference)
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
        media_type = _media_type(response.headers.get("Content-Type"))
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
        _check_reference(reference)
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
        if _media_type(response.headers.get("Content-Type")) != OCI_INDEX:
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
