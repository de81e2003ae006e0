"""Talking to one OCI registry: TLS or loopback HTTP, the auth challenge, tokens and retries.

* Auth: the ``WWW-Authenticate`` challenge on a 401 picks Bearer (token from the realm, with
  Basic credentials or an identity token) or Basic; credentials come from a lookup function
  (:class:`keyless.oci.auth.DockerConfigCredentials` by default).
* Transport: HTTPS with the system CAs plus ``cacert``; plain HTTP only for a loopback registry
  that does not speak TLS, or with ``allow_http``. 429 and 5xx are retried with exponential
  backoff (``Retry-After`` honoured up to a cap); 401/403/404 raise errors that name the
  registry, the repository and what was asked.

The registry API itself (manifests, blobs, referrers) is
:class:`keyless.oci.registry.RegistryClient`.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Callable
from random import SystemRandom
from typing import Self
from urllib.parse import urlsplit

import httpx

from keyless.errors import ConfigError, shown
from keyless.oci.auth import Credentials, DockerConfigCredentials
from keyless.oci.content import MAX_MANIFEST
from keyless.oci.errors import RegistryAuthError, RegistryError, RegistryNotFound
from keyless.oci.reference import is_loopback

__all__ = ["CredentialLookup", "RegistryTransport", "parse_challenge"]

MAX_TOKEN = 1 << 20
RETRIED = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0
_jitter = SystemRandom()


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


CredentialLookup = Callable[[str], Credentials | None]


class RegistryTransport:
    """Requests to one registry (``host[:port]``) with auth and retries; the base of
    :class:`keyless.oci.registry.RegistryClient`."""

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

    def __enter__(self) -> Self:
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
