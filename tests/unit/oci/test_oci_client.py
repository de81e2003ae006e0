"""The registry client's pure parts and its HTTP behaviour against scripted answers: reference
grammar, Docker config lookup, the Bearer challenge, retries on 429/5xx, refusals."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from keyless.errors import ConfigError, InvalidInput
from keyless.oci.auth import Credentials, find_credentials, load_config
from keyless.oci.content import referrers_tag, sha256_digest
from keyless.oci.errors import RegistryAuthError, RegistryError
from keyless.oci.reference import is_loopback, parse_reference
from keyless.oci.registry import RegistryClient
from keyless.oci.transport import parse_challenge

DIGEST = "sha256:" + "ab" * 32
MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'


@pytest.mark.parametrize(("text", "registry", "repo", "tag", "digest"), [
    ("127.0.0.1:5000/app:v1", "127.0.0.1:5000", "app", "v1", None),
    ("localhost/ns/app", "localhost", "ns/app", "latest", None),
    (f"ghcr.io/o/a@{DIGEST}", "ghcr.io", "o/a", None, DIGEST),
    (f"ghcr.io/o/a:v1@{DIGEST}", "ghcr.io", "o/a", None, DIGEST),
    ("alpine", "index.docker.io", "library/alpine", "latest", None),
    ("docker.io/org/app:1.2", "index.docker.io", "org/app", "1.2", None),
    ("[::1]:5000/app:x", "[::1]:5000", "app", "x", None),
])
def test_parse_reference(text: str, registry: str, repo: str, tag: str | None,
                         digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repo, tag, digest)


@pytest.mark.parametrize("text", [
    "", "UPPER/case", "host:5000/app@sha256:abc", "a b", "reg.io/app:bad tag", "reg.io/",
    "reg.io/app:" + "x" * 200, "reg.io/app\n",
])
def test_parse_reference_refuses(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_reference(text)


def test_docker_hub_names_and_loopback() -> None:
    ref = parse_reference("alpine:3")
    assert ref.name == "index.docker.io/library/alpine"
    assert ref.api_host == "registry-1.docker.io"
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost") and is_loopback("[::1]:1")
    assert not is_loopback("registry.example:5000")


def test_referrers_tag_truncates() -> None:
    assert referrers_tag(DIGEST) == "sha256-" + "ab" * 32
    assert referrers_tag("sha512:" + "c" * 128) == "sha512-" + "c" * 64


def test_docker_config_lookup(tmp_path: Path) -> None:
    auth = base64.b64encode(b"u:p:with:colons").decode()
    config = {"auths": {
        "https://reg.example:5000/v1/": {"auth": auth},
        "https://index.docker.io/v1/": {"identitytoken": "refresh"},
    }}
    assert find_credentials("reg.example:5000", config) == Credentials("u", "p:with:colons")
    assert find_credentials("index.docker.io", config) == Credentials(identity_token="refresh")
    assert find_credentials("other.example", config) is None
    bad = {"auths": {"reg.example": {"auth": "!!!"}}}
    with pytest.raises(ConfigError, match="not base64"):
        find_credentials("reg.example", bad)
    with pytest.raises(ConfigError, match="invalid credential helper"):
        find_credentials("reg.example", {"credHelpers": {"reg.example": "../evil"}})
    (tmp_path / "c.json").write_text("[]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        load_config(tmp_path / "c.json")
    assert load_config(tmp_path / "absent.json") == {}


def test_secrets_are_not_in_repr() -> None:
    assert "p4ss" not in repr(Credentials("u", "p4ss", "tok3n"))
    assert "tok3n" not in repr(Credentials("u", "p4ss", "tok3n"))


def test_parse_challenge() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "reg",
                      "scope": "repository:a:pull"}


Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, creds: Credentials | None = None, **kw: object) -> RegistryClient:
    return RegistryClient("reg.example", credentials=lambda _: creds,
                          transport=httpx.MockTransport(handler), sleep=lambda _: None,
                          **kw)  # type: ignore[arg-type]


def test_bearer_challenge_with_basic_credentials() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers.get("Authorization")))
        if request.url.host == "auth.example":
            return httpx.Response(200, json={"token": "T0K"})
        if request.headers.get("Authorization") != "Bearer T0K":
            return httpx.Response(401, headers={
                "WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="reg"'})
        return httpx.Response(200, content=MANIFEST, headers={
            "Content-Type": "application/vnd.oci.image.manifest.v1+json"})

    with client(handler, Credentials("u", "p")) as c:
        assert c.get_manifest("o/app", "v1").digest == sha256_digest(MANIFEST)
        c.get_manifest("o/app", "v1")
    token_url, basic = seen[1]
    assert token_url.startswith("https://auth.example/token?")
    assert "scope=repository%3Ao%2Fapp%3Apull" in token_url and "service=reg" in token_url
    assert basic == "Basic " + base64.b64encode(b"u:p").decode()
    assert len(seen) == 4  # 401, token, retry; then the cached token straight away


def test_token_realm_over_plain_http_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={
            "WWW-Authenticate": 'Bearer realm="http://evil.example/token"'})

    with client(handler, Credentials("u", "p")) as c, pytest.raises(RegistryError,
                                                                    match="not https"):
        c.get_manifest("o/app", "v1")


def test_retries_on_429_and_5xx_then_fails_clearly() -> None:
    answers = [429, 503, 200]
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        status = answers.pop(0) if answers else 500
        return httpx.Response(status, content=MANIFEST if status == 200 else b"",
                              headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                                       "Retry-After": "1"})

    with client(handler) as c:
        c.get_manifest("o/app", "v1")
        assert len(calls) == 3
        expected = r"o/app on reg\.example failed manifest v2: HTTP 500"
        with pytest.raises(RegistryError, match=expected):
            c.get_manifest("o/app", "v2")
    assert len(calls) == 3 + 5  # first try + 4 retries


def test_other_bytes_for_a_digest_are_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=MANIFEST, headers={
            "Content-Type": "application/vnd.oci.image.manifest.v1+json"})

    with client(handler) as c, pytest.raises(RegistryError, match="served other bytes"):
        c.get_manifest("o/app", DIGEST)


def test_oversized_answers_are_cut_off() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b" " * (5 << 20))

    with client(handler) as c, pytest.raises(RegistryError, match="more than"):
        c.get_manifest("o/app", "v1")


def test_forbidden_names_the_repository() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"errors": [{"code": "DENIED", "message": "no"}]})

    with client(handler) as c, pytest.raises(RegistryAuthError) as caught:
        c.put_manifest("o/app", "v1", MANIFEST, "application/vnd.oci.image.manifest.v1+json")
    assert str(caught.value) == (
        "repository o/app on reg.example denies upload of manifest v1: HTTP 403 ('DENIED: no')")


def test_plain_http_only_for_loopback_or_when_allowed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps({"manifests": []}).encode())

    assert client(handler).base == "https://reg.example"
    refused = RegistryClient("reg.example", credentials=lambda _: None, allow_http=True,
                             transport=httpx.MockTransport(
                                 lambda r: (_ for _ in ()).throw(httpx.ConnectError("tls"))))
    assert refused.base == "http://reg.example"


def test_a_registry_with_the_referrers_api_gets_no_fallback_index() -> None:
    """PUT answers ``OCI-Subject`` and the API lists the manifest: no ``sha256-HEX`` tag is
    written. The API's pages are followed through ``Link``."""
    from keyless.oci.content import Descriptor, Manifest

    referrer = Manifest(b'{"r":1}', "application/vnd.oci.image.manifest.v1+json",
                        sha256_digest(b'{"r":1}'))
    other = "sha256:" + "ef" * 32
    puts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "PUT":
            puts.append(path)
            return httpx.Response(201, headers={"OCI-Subject": DIGEST})
        if path == f"/v2/o/app/referrers/{DIGEST}" and not request.url.query:
            page = {"manifests": [{"mediaType": referrer.media_type, "digest": other,
                                   "size": 3, "artifactType": "x/y"}]}
            return httpx.Response(200, json=page, headers={
                "Link": f'</v2/o/app/referrers/{DIGEST}?n=2>; rel="next"'})
        if path == f"/v2/o/app/referrers/{DIGEST}":
            page = {"manifests": [{"mediaType": referrer.media_type, "digest": referrer.digest,
                                   "size": 7, "artifactType": "a/b"}]}
            return httpx.Response(200, json=page)
        return httpx.Response(404)

    with client(handler) as c:
        c.push_referrer("o/app", referrer, DIGEST, "a/b")
        assert puts == [f"/v2/o/app/manifests/{referrer.digest}"]
        found = c.referrers("o/app", DIGEST)
        assert [d.digest for d in found] == [other, referrer.digest]
        assert c.referrers("o/app", DIGEST, artifact_type="a/b") == [
            Descriptor(referrer.media_type, referrer.digest, 7, "a/b")]


def test_fallback_index_merges_and_survives_a_lost_update() -> None:
    """A concurrent writer replaces the index right after our PUT (If-Match ignored, as by
    distribution 2.8): the re-read shows our entry gone and we merge it back in."""
    from keyless.oci.content import Descriptor, referrers_tag

    tag = referrers_tag(DIGEST)
    state: dict[str, bytes] = {}
    other = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": "sha256:" + "11" * 32, "size": 5}
    events: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            if tag not in state:
                return httpx.Response(404)
            return httpx.Response(200, content=state[tag], headers={
                "Content-Type": "application/vnd.oci.image.index.v1+json",
                "ETag": '"' + sha256_digest(state[tag]) + '"'})
        events.append("put")
        mine = json.loads(request.content)
        if len(events) == 1:  # a stale writer overwrites our first PUT
            state[tag] = json.dumps({"schemaVersion": 2, "manifests": [other]}).encode()
        else:
            state[tag] = request.content
        assert mine["mediaType"] == "application/vnd.oci.image.index.v1+json"
        return httpx.Response(201)

    entry = Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + "22" * 32, 9,
                       "a/b", {"k": "v"})
    with client(handler) as c:
        c.add_to_fallback_index("o/app", DIGEST, entry)
        found = c.referrers_fallback("o/app", DIGEST)[0]
    assert events == ["put", "put"]
    assert [d.digest for d in found] == [other["digest"], entry.digest]
    assert found[1].annotations == {"k": "v"}
