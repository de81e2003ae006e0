"""The whole stack (every service of ``keyless serve`` on SQLite) driven through its real ASGI app
with hostile requests: generated paths on every route, hostile query strings and headers, and
bodies mutated from the requests real clients send.

Invariant (contracts.md §5): never a 5xx; every 4xx is JSON ``{"code", "message"}``, except the
browser pages (the embedded OIDC provider's login and device pages, the log explorer at ``/`` and
``/explorer/``), which answer HTML; every answer comes quickly.
"""

from __future__ import annotations

import base64
import functools
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from fuzz_support import (
    FUZZ_SLOW,
    JSON_VALUES,
    MAX_SECONDS,
    TEXT,
    dumps,
    mutated_bytes,
    mutated_json_text,
    mutated_request,
)
from hypothesis import given
from hypothesis import strategies as st
from tlog_support import CA, Signer, dsse_v1, dsse_v2, hashedrekord_v1, hashedrekord_v2, statement

from keyless.formats import tsp
from keyless.server.app import create_app
from keyless.server.config import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

#: answered as HTML for a browser (OIDC login and device pages, the log explorer's pages)
HTML_PAGES = ("/oidc/auth", "/oidc/device", "/explorer/")


def _is_html_page(url: str) -> bool:
    return url.startswith(HTML_PAGES) or url.split("?", 1)[0] == "/"  # the explorer's home


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp)))
        with TestClient(app, raise_server_exceptions=False) as c:
            c.routes = [(r.path, sorted(r.methods or ["GET"]))  # type: ignore[attr-defined]
                        for r in app.router.routes if hasattr(r, "path")]
            yield c


def _check(response: Any, started: float, what: str) -> None:
    elapsed = time.monotonic() - started
    assert elapsed < MAX_SECONDS, f"{what}: answered after {elapsed:.1f} s"
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    method, url = what.split(" ", 1)
    if response.status_code >= 400 and method != "HEAD" and not _is_html_page(url):
        try:
            body = response.json()
        except ValueError:
            raise AssertionError(f"{what}: {response.status_code} is not JSON: "
                                 f"{response.text[:200]!r}") from None
        assert isinstance(body, dict) and {"code", "message"} <= set(body), (what, body)
        assert len(body["message"]) < 2000, (what, body["message"][:200])


def _send(client: Any, method: str, url: str, **kwargs: Any) -> None:
    started = time.monotonic()
    response = client.request(method, url, **kwargs)
    _check(response, started, f"{method} {url[:200]}")


# --------------------------------------------------------------------------------------------
# Paths, query strings and headers on every route.

SEGMENTS = st.one_of(
    TEXT.map(lambda t: urllib.parse.quote(t.encode("utf-8", "surrogatepass"), safe="")),
    st.sampled_from(["0", "-1", "18446744073709551616", "1e3", "0x10", "%00", "..", "%2e%2e",
                     "a" * 64, "0" * 80, "24296fb24b8ad77a" + "b" * 64, "tile/0/000",
                     "0/x001/234.p/7", "entries/000", "entries/x999/999.p/256", "8/000",
                     "0/000.p/0", "63/x" + "000/x" * 7 + "000", "sha256:" + "0" * 64,
                     "root.json", "1.root.json", "targets.json", "..%2f..%2fetc%2fpasswd",
                     "A" * 5000]),
)
QUERY_NAMES = ["hash", "treeID", "user_code", "after", "end", "first", "second", "firstSize",
               "lastSize", "limit", "logIndex", "start", "tree_size", "index", "leaf_hash",
               "client_id", "redirect_uri", "response_type", "scope", "state",
               "code_challenge", "code_challenge_method", "nonce", "email", "kind"]
HEADERS = st.dictionaries(
    st.sampled_from(["Content-Type", "Authorization", "Accept", "X-Forwarded-For", "Cookie",
                     "Origin", "Accept-Encoding", "Range"]),
    st.one_of(st.sampled_from(["application/json", "application/timestamp-query",
                               "application/x-www-form-urlencoded", "text/plain", "*/*",
                               "Bearer x.y.z", "Bearer ", "Basic Zm9vOmJhcg==", "bytes=0-1",
                               "application/json; charset=utf-16", "multipart/form-data",
                               "gzip", "1.2.3.4, 5.6.7.8"]),
              st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=60)),
    max_size=3,
)


@st.composite
def requests(draw: st.DrawFn, routes: list[tuple[str, list[str]]]) -> tuple[str, str, Any]:
    path, methods = draw(st.sampled_from(routes))
    while "{" in path:
        head, rest = path.split("{", 1)
        path = head + draw(SEGMENTS) + rest.split("}", 1)[1]
    if draw(st.integers(0, 9)) == 0:
        path += draw(st.sampled_from(["/", "/x", "//", "/%ff", "?"]))
    query = draw(st.lists(st.tuples(st.sampled_from(QUERY_NAMES), SEGMENTS), max_size=3))
    url = path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    method = draw(st.sampled_from([*methods, "GET", "POST", "PUT", "DELETE", "OPTIONS"]))
    return method, url, draw(HEADERS)


@FUZZ_SLOW
@given(data=st.data())
def test_every_route_with_hostile_paths_queries_and_headers(client: Any, data: Any) -> None:
    method, url, headers = data.draw(requests(client.routes))
    body = data.draw(st.one_of(st.just(b""), st.binary(max_size=64), JSON_VALUES.map(dumps)))
    _send(client, method, url, headers=headers, content=body if method != "GET" else None)


# --------------------------------------------------------------------------------------------
# Bodies mutated from real client requests, on every POST route.

@functools.cache
def _json_seeds() -> dict[str, list[Any]]:
    ca = CA.create()
    signer = Signer.create(ca)
    digest = base64.b64encode(b"\x11" * 32).decode()
    return {
        "/api/v1/log/entries": [hashedrekord_v1(signer, b"artifact"),
                                dsse_v1(signer, statement())],
        "/rekor/api/v2/log/entries": [hashedrekord_v2(signer, b"artifact"),
                                      dsse_v2(signer, statement())],
        "/api/v1/log/entries/retrieve": [{"entryUUIDs": ["ab" * 32]}, {"logIndexes": [0, 1]}],
        "/api/v1/index/retrieve": [{"hash": "sha256:" + "ab" * 32}, {"email": "a@b.test"},
                                   {"publicKey": {"format": "x509", "content": digest}}],
        "/api/v2/signingCert": [
            {"credentials": {"oidcIdentityToken": "a.b.c"},
             "publicKeyRequest": {"publicKey": {"algorithm": "ECDSA", "content": digest},
                                  "proofOfPossession": digest}},
            {"credentials": {"oidcIdentityToken": "a.b.c"},
             "certificateSigningRequest": digest}],
        "/api/v1/signingCert": [{"publicKey": {"content": digest, "algorithm": "ecdsa"},
                                 "signedEmailAddress": digest}],
        "/api/v1/timestamp": [{"artifactHash": digest, "hashAlgorithm": "sha256",
                               "certificates": True, "nonce": 7}],
        "/ctlog/ct/v1/add-chain": [{"chain": [base64.b64encode(
            signer.cert.public_bytes(encoding=_DER)).decode()]}],
        "/ctlog/ct/v1/add-pre-chain": [{"chain": [digest, digest]}],
    }


_DER = Encoding.DER
_TSQ = [tsp.encode_query(b"\x11" * 32, nonce=5, cert_req=True), tsp.encode_query(b"\x22" * 64,
                                                                               "sha512")]
_FORMS = {"/oidc/token": [b"grant_type=client_credentials&client_id=sigstore",
                          b"grant_type=authorization_code&code=x&code_verifier=y&client_id=s",
                          b"grant_type=password&username=alice%40example.com&password=x",
                          b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"
                          b"&device_code=x&client_id=sigstore"],
          "/oidc/device/code": [b"client_id=sigstore&scope=openid+email"],
          "/oidc/auth": [b"username=alice%40example.com&password=x&csrf_token=t&state=s"],
          "/oidc/device": [b"user_code=ABCD-EFGH&csrf_token=t"],
          "/oidc/userinfo": [b"access_token=x"]}


@FUZZ_SLOW
@given(data=st.data())
def test_post_routes_with_bodies_mutated_from_real_requests(client: Any, data: Any) -> None:
    seeds = _json_seeds()
    route = data.draw(st.sampled_from(sorted([*seeds, *_FORMS, "/api/v1/timestamp#der"])))
    if route in _FORMS:
        body = data.draw(mutated_bytes(_FORMS[route]))
        content_type = "application/x-www-form-urlencoded"
    elif route == "/api/v1/timestamp#der":
        route, body = "/api/v1/timestamp", data.draw(mutated_bytes(_TSQ))
        content_type = "application/timestamp-query"
    else:
        body = data.draw(st.one_of(mutated_request(seeds[route]).map(dumps),
                                   mutated_json_text(seeds[route])))
        content_type = data.draw(st.sampled_from(["application/json", "text/plain"]))
    headers = {"Content-Type": content_type}
    if data.draw(st.booleans()):
        headers["Authorization"] = "Bearer " + data.draw(st.sampled_from(["a.b.c", "x" * 20_000]))
    _send(client, "POST", route, content=body, headers=headers)
