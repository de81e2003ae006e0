"""Hostile bodies never make the CA or the CT log answer 500 (contracts.md §5)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ca_testkit import build_stack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.services.ca.routes import routes as ca_routes
from keyless.services.ctlog.routes import routes as ctlog_routes

_HC = [HealthCheck.function_scoped_fixture]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=3),
    max_leaves=8,
)
# bodies shaped like real requests, with hostile leaves
shaped = st.fixed_dictionaries(
    {},
    optional={
        "credentials": st.fixed_dictionaries({}, optional={"oidcIdentityToken": json_values}),
        "certificateSigningRequest": json_values,
        "publicKeyRequest": st.fixed_dictionaries({}, optional={
            "publicKey": st.fixed_dictionaries({}, optional={"content": json_values}),
            "proofOfPossession": json_values}),
        "publicKey": json_values,
        "signedEmailAddress": json_values,
        "chain": json_values,
    },
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    stack = build_stack(tmp_path_factory.mktemp("fuzz") / "ca")
    app = Starlette(routes=[*ca_routes(stack.ca),
                            Mount("/ctlog", routes=ctlog_routes(stack.ctlog))],
                    exception_handlers=EXCEPTION_HANDLERS)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@settings(max_examples=150, deadline=None, suppress_health_check=_HC)
@given(body=shaped | json_values, path=st.sampled_from(
    ["/api/v2/signingCert", "/api/v1/signingCert", "/ctlog/ct/v1/add-chain",
     "/ctlog/ct/v1/add-pre-chain"]), bearer=st.booleans())
def test_hostile_json_is_answered_4xx(client: Any, body: Any, path: str, bearer: bool) -> None:
    headers = {"Authorization": "Bearer x.y.z"} if bearer else {}
    resp = client.post(path, content=json.dumps(body), headers=headers)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    assert set(resp.json()) == {"code", "message"}


@settings(max_examples=60, deadline=None, suppress_health_check=_HC)
@given(raw=st.binary(max_size=200))
def test_non_json_bodies(client: Any, raw: bytes) -> None:
    resp = client.post("/api/v2/signingCert", content=raw)
    assert 400 <= resp.status_code < 500


@settings(max_examples=60, deadline=None, suppress_health_check=_HC)
@given(query=st.dictionaries(st.sampled_from(["start", "end", "first", "second", "hash",
                                              "tree_size"]), st.text(max_size=12), max_size=4),
       path=st.sampled_from(["get-entries", "get-sth-consistency", "get-proof-by-hash"]))
def test_hostile_queries(client: Any, query: dict[str, str], path: str) -> None:
    resp = client.get(f"/ctlog/ct/v1/{path}", params=query)
    assert resp.status_code in (200, 400, 404), (resp.status_code, resp.text)


def test_oversized_body_is_413(client: Any) -> None:
    resp = client.post("/api/v2/signingCert", content=b"{" + b" " * (70 * 1024) + b"}")
    assert resp.status_code == 413
    assert "limit" in resp.json()["message"]


def test_tile_paths_never_500(client: Any) -> None:
    for p in ["tile/0/999", "tile/x/000", "tile/data/000", "tile/0/000.p/1", "issuer/zz",
              "tile/5/x999/x999/999"]:
        assert client.get(f"/ctlog/{p}").status_code in (200, 404)


