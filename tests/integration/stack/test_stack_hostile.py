"""Hostile input against every HTTP API of one real ``keyless serve`` (contracts.md §5).

Every URL family of contracts.md §2 gets malformed, oversized and out-of-range requests; each
must be answered with the expected 4xx and a ``{"code": N, "message": "..."}`` body whose
message names the problem (a limit by its value), never a 500 or a stack trace. Afterwards the
server log must hold no traceback and no secret (passwords, identity tokens). Also: concurrent
duplicate submissions stay idempotent (v1: one 201 then 409 + Location; v2: one entry), and a
stalled body is cut off with 408.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from stackutil import PASSWORD, USER, RunningStack, start_stack

pytestmark = pytest.mark.integration

MAX_INT64 = 2**63 - 1
JSON_TYPE = {"Content-Type": "application/json"}
FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}
DER_TYPE = {"Content-Type": "application/timestamp-query"}


@dataclass(frozen=True)
class Case:
    """One hostile request and what it must be answered with."""

    name: str
    method: str
    path: str
    status: int
    fragment: str  # must appear in the JSON message
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


HASHEDREKORD_BAD_B64 = json.dumps(
    {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": "00" * 32}},
        "signature": {"content": "!!notbase64!!", "publicKey": {"content": "AAAA"}}}}
).encode()  # fmt: skip
_KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC_PEM = _KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()
KEY_REQUEST = {"publicKey": {"content": PUBLIC_PEM}, "proofOfPossession": "AAAA"}
ALGORITHM_LIST = json.dumps(
    {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": ["sha256"], "value": "00" * 32}},
        "signature": {"content": "AAAA",
                      "publicKey": {"content": base64.b64encode(PUBLIC_PEM.encode()).decode()}}}}
).encode()  # fmt: skip
ALG_LIST_TOKEN = (
    base64.urlsafe_b64encode(b'{"alg": ["ES256"], "kid": "x"}').rstrip(b"=").decode()
    + ".e30.AAAA"
)
V2_WRONG_TYPES = json.dumps(
    {"hashedRekordRequestV002": {"digest": 5, "signature": {"content": [], "verifier": None}}}
).encode()

CASES = [
    # -- stack endpoints and routing --------------------------------------------------------
    Case("unknown path", "GET", "/no/such/thing", 404, "no such resource: /no/such/thing"),
    Case("healthz wrong method", "POST", "/healthz", 405, "method POST is not allowed"),
    Case("metrics wrong method", "DELETE", "/metrics", 405, "use GET"),
    Case("trust config wrong method", "PUT", "/client-trust-config.json", 405, "not allowed"),
    Case("percent-encoded NUL path", "GET", "/%00", 404, "no such resource"),
    # -- CA (Fulcio API) --------------------------------------------------------------------
    Case("ca v2 empty body", "POST", "/api/v2/signingCert", 400, "is empty", b"", JSON_TYPE),
    Case("ca v2 not json", "POST", "/api/v2/signingCert", 400, "not valid JSON", b"{", JSON_TYPE),
    Case("ca v2 array", "POST", "/api/v2/signingCert", 400, "must be a JSON object, not list",
         b"[]", JSON_TYPE),
    Case("ca v2 deep nesting", "POST", "/api/v2/signingCert", 400, "not valid JSON",
         _nested(100_000)[:60_000], JSON_TYPE),
    Case("ca v2 neither dialect", "POST", "/api/v2/signingCert", 400,
         "needs certificateSigningRequest or publicKeyRequest", b"{}", JSON_TYPE),
    Case("ca v2 csr not base64", "POST", "/api/v2/signingCert", 400,
         "certificateSigningRequest is not valid base64",
         b'{"certificateSigningRequest": "!!!"}', JSON_TYPE),
    Case("ca v2 csr wrong type", "POST", "/api/v2/signingCert", 400,
         "certificateSigningRequest must be a non-empty base64 string",
         b'{"certificateSigningRequest": 5}', JSON_TYPE),
    Case("ca v2 key request array", "POST", "/api/v2/signingCert", 400,
         "'publicKeyRequest' must be an object", b'{"publicKeyRequest": [1]}', JSON_TYPE),
    Case("ca v2 credentials array", "POST", "/api/v2/signingCert", 400,
         "'credentials' must be an object",
         json.dumps({"credentials": [], "publicKeyRequest": KEY_REQUEST}).encode(), JSON_TYPE),
    Case("ca v2 token wrong type", "POST", "/api/v2/signingCert", 400,
         "'credentials.oidcIdentityToken' must be a string",
         json.dumps({"credentials": {"oidcIdentityToken": 5}, "publicKeyRequest": KEY_REQUEST})
         .encode(), JSON_TYPE),
    Case("ca v2 no token", "POST", "/api/v2/signingCert", 401, "no identity token",
         json.dumps({"publicKeyRequest": KEY_REQUEST}).encode(), JSON_TYPE),
    Case("ca v2 forged token", "POST", "/api/v2/signingCert", 401, "identity token",
         json.dumps({"publicKeyRequest": KEY_REQUEST}).encode(),
         {**JSON_TYPE, "Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."}),
    Case("ca v2 token alg list", "POST", "/api/v2/signingCert", 401,
         "identity token algorithm \"['ES256']\" is not allowed",
         json.dumps({"publicKeyRequest": KEY_REQUEST}).encode(),
         {**JSON_TYPE, "Authorization": "Bearer " + ALG_LIST_TOKEN}),
    Case("ca v2 lone surrogate", "POST", "/api/v2/signingCert", 400, "lone UTF-16 surrogate",
         b'{"publicKeyRequest": {"publicKey": {"content": "\\ud800"}}}', JSON_TYPE),
    Case("ca v2 both dialects", "POST", "/api/v2/signingCert", 400,
         "send certificateSigningRequest or publicKeyRequest, not both",
         json.dumps({"certificateSigningRequest": "AAAA", "publicKeyRequest": KEY_REQUEST})
         .encode(), JSON_TYPE),
    Case("ca v2 key not PEM", "POST", "/api/v2/signingCert", 400,
         "publicKey.content is not a PEM or DER public key",
         b'{"publicKeyRequest": {"publicKey": {"content": "x"}, "proofOfPossession": "AAAA"}}',
         JSON_TYPE),
    Case("ca v2 over the limit", "POST", "/api/v2/signingCert", 413, "limit of 65536 bytes",
         b"{" + b" " * 70_000 + b"}", JSON_TYPE),
    Case("ca v2 wrong method", "GET", "/api/v2/signingCert", 405, "use POST"),
    Case("ca v1 not json", "POST", "/api/v1/signingCert", 400, "not valid JSON", b"\xff\xfe",
         JSON_TYPE),
    Case("ca v1 no key", "POST", "/api/v1/signingCert", 400,
         "needs publicKey or certificateSigningRequest", b'{"publicKey": 5}', JSON_TYPE),
    Case("ca trustBundle wrong method", "POST", "/api/v2/trustBundle", 405, "use GET"),
    Case("ca rootCert wrong method", "DELETE", "/api/v1/rootCert", 405, "use GET"),
    # -- Rekor v1 ---------------------------------------------------------------------------
    Case("v1 create empty", "POST", "/api/v1/log/entries", 400, "is empty", b"", JSON_TYPE),
    Case("v1 create null", "POST", "/api/v1/log/entries", 400,
         "must be a JSON object, not NoneType",
         b"null", JSON_TYPE),
    Case("v1 create NaN", "POST", "/api/v1/log/entries", 400, "", b'{"kind": NaN}', JSON_TYPE),
    Case("v1 create bad base64", "POST", "/api/v1/log/entries", 400, "base64",
         HASHEDREKORD_BAD_B64, JSON_TYPE),
    Case("v1 create algorithm list", "POST", "/api/v1/log/entries", 400,
         "spec.data.hash.algorithm must be one of", ALGORITHM_LIST, JSON_TYPE),
    Case("v1 create over the limit", "POST", "/api/v1/log/entries", 413, "exceeds the limit of",
         b"{" + b" " * (5 * 1024 * 1024) + b"}", JSON_TYPE),
    Case("v1 logIndex missing", "GET", "/api/v1/log/entries", 400,
         "logIndex query parameter is required"),
    Case("v1 logIndex negative", "GET", "/api/v1/log/entries?logIndex=-1", 400,
         f"from 0 to {MAX_INT64}"),
    Case("v1 logIndex float", "GET", "/api/v1/log/entries?logIndex=1.5", 400, "must be an integer"),
    Case("v1 logIndex 2**64", "GET", f"/api/v1/log/entries?logIndex={2**64}", 400,
         f"from 0 to {MAX_INT64}"),
    Case("v1 logIndex max int64", "GET", f"/api/v1/log/entries?logIndex={MAX_INT64}", 404,
         f"no entry at log index {MAX_INT64}"),
    Case("v1 logIndex 19 nines", "GET", "/api/v1/log/entries?logIndex=9999999999999999999", 400,
         f"from 0 to {MAX_INT64}"),
    Case("v1 logIndex repeated", "GET", "/api/v1/log/entries?logIndex=0&logIndex=1", 400,
         "'logIndex' is repeated"),
    Case("v1 logIndex unicode digit", "GET", "/api/v1/log/entries?logIndex=%D9%A3", 400,
         "must be an integer"),
    Case("v1 logIndex NUL", "GET", "/api/v1/log/entries?logIndex=%00", 400, "must be an integer"),
    Case("v1 uuid garbage", "GET", "/api/v1/log/entries/zz", 400, ""),
    Case("v1 uuid unknown", "GET", "/api/v1/log/entries/" + "ab" * 32, 404, "no entry with UUID"),
    Case("v1 uuid huge", "GET", "/api/v1/log/entries/" + "a" * 8000, 400, ""),
    Case("v1 create unsupported kind", "POST", "/api/v1/log/entries", 400,
         "unsupported entry kind 'rekord' version '0.0.1'",
         b'{"apiVersion": "0.0.1", "kind": "rekord", "spec": {}}', JSON_TYPE),
    Case("v1 retrieve nothing", "POST", "/api/v1/log/entries/retrieve", 400,
         "give entryUUIDs, logIndexes or entries", b"{}", JSON_TYPE),
    Case("v1 retrieve negative", "POST", "/api/v1/log/entries/retrieve", 400,
         "non-negative integers", b'{"logIndexes": [-1]}', JSON_TYPE),
    Case("v1 retrieve too many", "POST", "/api/v1/log/entries/retrieve", 400, "a list of 1 to",
         b'{"logIndexes": [' + b"1," * 10_000 + b"1]}", JSON_TYPE),
    Case("v1 retrieve unknown field", "POST", "/api/v1/log/entries/retrieve", 400,
         "unknown field(s) x", b'{"x": 1}', JSON_TYPE),
    Case("v1 proof first > last", "GET", "/api/v1/log/proof?firstSize=5&lastSize=2", 400,
         "firstSize <= lastSize"),
    Case("v1 proof first 0", "GET", "/api/v1/log/proof?firstSize=0&lastSize=1", 400,
         f"'firstSize' must be an integer from 1 to {MAX_INT64}"),
    Case("v1 proof last too big", "GET", f"/api/v1/log/proof?firstSize=1&lastSize={MAX_INT64}", 400,
         "larger than the tree size"),
    Case("v1 proof wrong tree", "GET", "/api/v1/log/proof?treeID=abc&lastSize=1", 400,
         "treeID abc is not this log's tree"),
    Case("v1 publicKey wrong tree", "GET", "/api/v1/log/publicKey?treeID=%00", 400, "treeID"),
    Case("v1 log wrong method", "POST", "/api/v1/log", 405, "use GET"),
    Case("v1 index retrieve empty", "POST", "/api/v1/index/retrieve", 400,
         "search needs at least one of hash, email, publicKey", b"{}", JSON_TYPE),
    Case("v1 index retrieve bad hash", "POST", "/api/v1/index/retrieve", 400, "",
         b'{"hash": "sha256:zz"}', JSON_TYPE),
    Case("v1 index retrieve hash type", "POST", "/api/v1/index/retrieve", 400,
         "hash must be a string", b'{"hash": 5}', JSON_TYPE),
    Case("v1 index retrieve bad operator", "POST", "/api/v1/index/retrieve", 400,
         "operator must be 'and' or 'or'",
         b'{"email": "a@b.c", "operator": "xor"}', JSON_TYPE),
    Case("v1 index retrieve lone surrogate", "POST", "/api/v1/index/retrieve", 400,
         "lone UTF-16 surrogate", b'{"email": "\\udc00@example.com"}', JSON_TYPE),
    Case("v1 search NUL email", "GET", "/api/v1/search?email=a%00b%40c.d", 400,
         "email must not contain control characters"),
    Case("v1 search huge value", "GET", "/api/v1/search?uri=" + "x" * 5000, 400,
         "the limit is 2048"),
    Case("v1 search nothing", "GET", "/api/v1/search", 400, "search needs at least one of"),
    Case("v1 search limit 0", "GET", "/api/v1/search?email=a@b.c&limit=0", 400,
         "'limit' must be an integer from 1"),
    Case("v1 search repeated", "GET", "/api/v1/search?email=a@b.c&email=x@y.z", 400,
         "email is repeated"),
    # -- Rekor v2 ---------------------------------------------------------------------------
    Case("v2 create empty", "POST", "/rekor/api/v2/log/entries", 400, "is empty", b"", JSON_TYPE),
    Case("v2 create wrong types", "POST", "/rekor/api/v2/log/entries", 400, "", V2_WRONG_TYPES,
         JSON_TYPE),
    Case("v2 create deep nesting", "POST", "/rekor/api/v2/log/entries", 400, "",
         _nested(50_000), JSON_TYPE),
    Case("v2 create over the limit", "POST", "/rekor/api/v2/log/entries", 413,
         "exceeds the limit of", b"[" * (5 * 1024 * 1024), JSON_TYPE),
    Case("v2 create unknown type", "POST", "/rekor/api/v2/log/entries", 400,
         "unknown request field(s) unknownRequestV002", b'{"unknownRequestV002": {}}', JSON_TYPE),
    Case("v2 create two types", "POST", "/rekor/api/v2/log/entries", 400,
         "exactly one of hashedRekordRequestV002, dsseRequestV002",
         b'{"hashedRekordRequestV002": {}, "dsseRequestV002": {}}', JSON_TYPE),
    Case("v2 entry negative", "GET", "/rekor/api/v2/log/entries/-1", 400, "log index must be"),
    Case("v2 entry max int64", "GET", f"/rekor/api/v2/log/entries/{MAX_INT64}", 404,
         "no entry at log index"),
    Case("v2 entry superscript digit", "GET", "/rekor/api/v2/log/entries/%C2%B2", 400,
         "log index must be an integer"),
    Case("v2 checkpoint wrong method", "POST", "/rekor/checkpoint", 405, "use GET"),
    Case("v2 tile non-canonical group", "GET", "/rekor/tile/0/x000/000", 400,
         "superfluous leading zero group"),
    Case("v2 tile level 64", "GET", "/rekor/tile/64/000", 400, "must be 0-63"),
    Case("v2 tile width 0", "GET", "/rekor/tile/0/000.p/0", 400, "width must be 1-255"),
    Case("v2 tile width 256", "GET", "/rekor/tile/0/000.p/256", 400, "width must be 1-255"),
    Case("v2 tile 4 digits", "GET", "/rekor/tile/0/0000", 400, "3-digit groups"),
    Case("v2 tile far right", "GET", "/rekor/tile/0/x" + "999/x" * 8 + "999/000", 404,
         "beyond any log's size"),
    Case("v2 tile beyond tree", "GET", "/rekor/tile/0/999", 404, ""),
    Case("v2 entries tile beyond", "GET", "/rekor/tile/entries/999.p/5", 404, ""),
    Case("v2 tile dot-dot", "GET", "/rekor/tile/%2e%2e/%2e%2e/keyless.db", 400, "tile level"),
    Case("v2 search bad digest", "GET", "/rekor/api/v2/search?digest=sha256:zz", 400,
         "hash must be 64 hex digits"),
    Case("v2 search bad fingerprint", "GET", "/rekor/api/v2/search?keyFingerprint=zz", 400,
         "keyFingerprint must be sha256:<64 hex digits>"),
    # -- CT log -----------------------------------------------------------------------------
    Case("ct add-chain empty", "POST", "/ctlog/ct/v1/add-chain", 400, "is empty", b"", JSON_TYPE),
    Case("ct add-chain not base64", "POST", "/ctlog/ct/v1/add-chain", 400, "base64",
         b'{"chain": ["!!"]}', JSON_TYPE),
    Case("ct add-chain not DER", "POST", "/ctlog/ct/v1/add-chain", 400, "",
         b'{"chain": ["aGVsbG8="]}', JSON_TYPE),
    Case("ct add-chain null", "POST", "/ctlog/ct/v1/add-chain", 400, "chain",
         b'{"chain": null}', JSON_TYPE),
    Case("ct add-pre-chain empty list", "POST", "/ctlog/ct/v1/add-pre-chain", 400, "chain",
         b'{"chain": []}', JSON_TYPE),
    Case("ct add-chain over the limit", "POST", "/ctlog/ct/v1/add-chain", 413,
         "limit of 262144 bytes", b'{"chain": ["' + b"A" * 300_000 + b'"]}', JSON_TYPE),
    Case("ct get-entries missing", "GET", "/ctlog/ct/v1/get-entries", 400, "'start' is required"),
    Case("ct get-entries negative", "GET", "/ctlog/ct/v1/get-entries?start=-1&end=5", 400,
         f"'start' must be an integer from 0 to {MAX_INT64}"),
    Case("ct get-entries 2**64", "GET", f"/ctlog/ct/v1/get-entries?start=0&end={2**64}", 400,
         "'end' must be an integer"),
    Case("ct get-entries reversed", "GET", "/ctlog/ct/v1/get-entries?start=5&end=1", 400, ""),
    Case("ct get-entries beyond", "GET", f"/ctlog/ct/v1/get-entries?start={MAX_INT64}"
         f"&end={MAX_INT64}", 400, "beyond the tree size"),
    Case("ct consistency float", "GET", "/ctlog/ct/v1/get-sth-consistency?first=1e3&second=2",
         400, "'first' must be an integer"),
    Case("ct consistency beyond", "GET", "/ctlog/ct/v1/get-sth-consistency?first=1"
         f"&second={MAX_INT64}", 400, "<= tree size"),
    Case("ct proof bad hash", "GET", "/ctlog/ct/v1/get-proof-by-hash?hash=AA==&tree_size=1",
         400, "32 bytes"),
    Case("ct proof tree size 0", "GET", "/ctlog/ct/v1/get-proof-by-hash?hash=" + "A" * 43
         + "%3D&tree_size=0", 400, "tree_size must be between 1"),
    Case("ct get-roots wrong method", "POST", "/ctlog/ct/v1/get-roots", 405, "use GET"),
    Case("ct tile unicode digits", "GET", "/ctlog/tile/0/x%D9%A0%D9%A0%D9%A1/000", 404,
         "no such tile path"),
    Case("ct tile width 256", "GET", "/ctlog/tile/0/000.p/256", 404, "tile width must be 1..255"),
    Case("ct issuer bad", "GET", "/ctlog/issuer/..%2F..%2Fkeyless.db", 404, ""),
    # -- TSA --------------------------------------------------------------------------------
    Case("tsa empty der", "POST", "/api/v1/timestamp", 400, "body is empty", b"", DER_TYPE),
    Case("tsa garbage der", "POST", "/api/v1/timestamp", 400, "not a DER TimeStampReq",
         b"\x00\x01garbage", DER_TYPE),
    Case("tsa indefinite length bomb", "POST", "/api/v1/timestamp", 400, "TimeStampReq",
         b"\x30\x80" * 2000, DER_TYPE),
    Case("tsa huge declared length", "POST", "/api/v1/timestamp", 400, "TimeStampReq",
         b"\x30\x84\xff\xff\xff\xff", DER_TYPE),
    Case("tsa no content type", "POST", "/api/v1/timestamp", 400, "TimeStampReq", b"\x30\x00"),
    Case("tsa text/plain", "POST", "/api/v1/timestamp", 415,
         "unsupported content type 'text/plain'",
         b"x", {"Content-Type": "text/plain"}),
    Case("tsa json empty object", "POST", "/api/v1/timestamp", 400, "", b"{}", JSON_TYPE),
    Case("tsa json bad base64", "POST", "/api/v1/timestamp", 400, "",
         b'{"artifactHash": "!!", "hashAlgorithm": "sha256"}', JSON_TYPE),
    Case("tsa json md5", "POST", "/api/v1/timestamp", 400, "md5",
         b'{"artifactHash": "' + b"A" * 22 + b'==", "hashAlgorithm": "md5"}', JSON_TYPE),
    Case("tsa json nonce huge", "POST", "/api/v1/timestamp", 400, "nonce",
         b'{"artifactHash": "' + b"A" * 43 + b'=", "hashAlgorithm": "sha256", "nonce": '
         + str(2**1000).encode() + b"}", JSON_TYPE),
    Case("tsa json certificates string", "POST", "/api/v1/timestamp", 400,
         "certificates must be a boolean",
         b'{"artifactHash": "' + b"A" * 43 + b'=", "hashAlgorithm": "sha256",'
         b' "certificates": "yes"}', JSON_TYPE),
    Case("tsa der over the limit", "POST", "/api/v1/timestamp", 413, "exceeds the limit of",
         b"\x30" * 100_000, DER_TYPE),
    Case("tsa wrong method", "GET", "/api/v1/timestamp", 405, "use POST"),
    Case("tsa certchain wrong method", "POST", "/api/v1/timestamp/certchain", 405, "use GET"),
    # -- OIDC -------------------------------------------------------------------------------
    Case("oidc token json body", "POST", "/oidc/token", 400, "application/x-www-form-urlencoded",
         b'{"grant_type": "password"}', JSON_TYPE),
    Case("oidc token no client", "POST", "/oidc/token", 401, "client_id is required",
         b"grant_type=password", FORM_TYPE),
    Case("oidc token unknown grant", "POST", "/oidc/token", 400,
         "grant_type 'refresh_token' is not supported",
         b"grant_type=refresh_token&client_id=sigstore", FORM_TYPE),
    Case("oidc token repeated", "POST", "/oidc/token", 400, "parameter 'grant_type' is repeated",
         b"grant_type=password&grant_type=x&client_id=sigstore", FORM_TYPE),
    Case("oidc token bad form", "POST", "/oidc/token", 400, "not a valid form",
         b"%zz%%%&&&==", FORM_TYPE),
    Case("oidc token wrong password", "POST", "/oidc/token", 400, "wrong email or password",
         b"grant_type=password&client_id=sigstore&username=nobody%40x.y&password=nope",
         FORM_TYPE),
    Case("oidc token missing password", "POST", "/oidc/token", 400,
         "parameter 'password' is required",
         b"grant_type=password&client_id=sigstore&username=a", FORM_TYPE),
    Case("oidc token bad code", "POST", "/oidc/token", 400, "authorization code is invalid",
         b"grant_type=authorization_code&client_id=sigstore&code=x&redirect_uri=http%3A%2F%2Fl",
         FORM_TYPE),
    Case("oidc token bad device code", "POST", "/oidc/token", 400, "device code is invalid",
         b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=sigstore"
         b"&device_code=x", FORM_TYPE),
    Case("oidc token huge form", "POST", "/oidc/token", 413, "limit of 65536 bytes",
         b"grant_type=password&username=" + b"a" * 100_000, FORM_TYPE),
    Case("oidc token NUL client", "POST", "/oidc/token", 401, "unknown client",
         b"grant_type=password&client_id=%00", FORM_TYPE),
    Case("oidc token wrong method", "GET", "/oidc/token", 405, "use POST"),
    Case("oidc device code no client", "POST", "/oidc/device/code", 401, "client_id is required",
         b"scope=openid", FORM_TYPE),
    Case("oidc authorize unknown client", "GET", "/oidc/auth?client_id=evil&response_type=code",
         400, "unknown client_id"),
    Case("oidc authorize open redirect", "GET", "/oidc/auth?client_id=sigstore&redirect_uri="
         "http%3A%2F%2Fevil.example%2F&response_type=code", 400, "redirect_uri is not registered"),
    Case("oidc authorize repeated", "GET", "/oidc/auth?client_id=sigstore&client_id=x", 400,
         "parameter 'client_id' is repeated"),
    Case("oidc login form without csrf", "POST", "/oidc/auth", 400, "CSRF",
         b"client_id=sigstore&username=a&password=b", FORM_TYPE),
    Case("oidc login form cross-site", "POST", "/oidc/auth", 400, "Origin mismatch",
         b"client_id=sigstore", {**FORM_TYPE, "Origin": "http://evil.example"}),
    Case("oidc login form huge", "POST", "/oidc/auth", 413, "limit of 65536 bytes",
         b"username=" + b"a" * 100_000, FORM_TYPE),
    Case("oidc device form without csrf", "POST", "/oidc/device", 400, "CSRF",
         b"user_code=ABCD-EFGH&username=a&password=b", FORM_TYPE),
    Case("oidc userinfo no token", "GET", "/oidc/userinfo", 401, "Authorization: Bearer"),
    Case("oidc userinfo garbage token", "GET", "/oidc/userinfo", 401,
         "not an ID token of this provider", None, {"Authorization": "Bearer x.y.z"}),
    Case("oidc jwks wrong method", "POST", "/oidc/jwks", 405, "use GET"),
    # -- TUF --------------------------------------------------------------------------------
    Case("tuf dot-dot", "GET", "/tuf/..%2Fkeyless.db", 404, ""),
    Case("tuf encoded dot-dot", "GET", "/tuf/%2e%2e/keyless.toml", 404, ""),
    Case("tuf target dot-dot", "GET", "/tuf/targets/..%2F..%2Fkeyless.db", 404, ""),
    Case("tuf unknown version", "GET", "/tuf/99999999999999999999.root.json", 404, ""),
    Case("tuf NUL", "GET", "/tuf/%00", 404, ""),
    Case("tuf wrong method", "POST", "/tuf/timestamp.json", 405, "use GET"),
]


@pytest.fixture(scope="module")
def hostile_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("hostile") / "data")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client(hostile_stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hostile_stack.url, timeout=30) as c:
        yield c


def _check(response: httpx.Response, status: int, fragment: str) -> str:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert body.get("code") == status, body
    message = body.get("message")
    assert isinstance(message, str) and message, body
    assert fragment in message, (fragment, message)
    assert "Traceback" not in message and 'File "' not in message
    return message


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_request_gets_a_named_4xx(client: httpx.Client, case: Case) -> None:
    response = client.request(case.method, case.path, content=case.body, headers=case.headers)
    _check(response, case.status, case.fragment)


def test_oversized_chunked_body_without_content_length(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 65536

    response = client.post("/rekor/api/v2/log/entries", content=chunks(), headers=JSON_TYPE)
    _check(response, 413, "exceeds the limit of")


def test_stalled_body_is_cut_off_with_408(hostile_stack: RunningStack) -> None:
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", hostile_stack.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/v1/log/entries HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{"
        )
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), raw[:300]
    assert "no request body data arrived for 10 s" in json.loads(body)["message"]
    assert time.monotonic() - start < 25


def _raw_exchange(port: int, request: bytes) -> tuple[bytes, dict[str, Any], float]:
    """Send raw bytes, read until the server closes: (status line, JSON body, seconds)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), raw[:300]
    return head.split(b"\r\n", 1)[0], json.loads(body), time.monotonic() - start


@pytest.mark.parametrize(
    ("request_bytes", "status", "fragment"),
    [
        (b"GARBAGE\r\n\r\n", b"400", "malformed HTTP request"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", b"400", "malformed"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 80_000 + b"\r\n\r\n",
         b"431", "request head"),
    ],
    ids=["not-http", "bad-header-line", "huge-head"],
)
def test_requests_the_http_parser_rejects_get_json(
    hostile_stack: RunningStack, request_bytes: bytes, status: bytes, fragment: str
) -> None:
    line, body, _ = _raw_exchange(hostile_stack.port, request_bytes)
    assert status in line, line
    assert body["code"] == int(status) and fragment in body["message"], body


def test_a_request_head_that_never_ends_is_cut_off_with_408(hostile_stack: RunningStack) -> None:
    line, body, seconds = _raw_exchange(
        hostile_stack.port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
    )
    assert b"408" in line and "request head" in body["message"], (line, body)
    assert seconds < 25


def _hashedrekord_pair() -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid Rekor v1 hashedrekord and the equivalent v2 request for one fresh signature."""
    key = ec.generate_private_key(ec.SECP256R1())
    data = os.urandom(64)
    signature = base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()
    public = key.public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.sha256(data).digest()
    v1 = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
        "signature": {"content": signature,
                      "publicKey": {"content": base64.b64encode(pem).decode()}}}}  # fmt: skip
    v2 = {"hashedRekordRequestV002": {
        "digest": base64.b64encode(digest).decode(),
        "signature": {"content": signature, "verifier": {
            "publicKey": {"rawBytes": base64.b64encode(der).decode()},
            "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}}}  # fmt: skip
    return v1, v2


def test_concurrent_duplicate_submissions_stay_idempotent(hostile_stack: RunningStack) -> None:
    v1, v2 = _hashedrekord_pair()

    def post(path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(hostile_stack.url + path, json=body, timeout=60)

    with ThreadPoolExecutor(12) as pool:
        first = list(pool.map(lambda _: post("/api/v1/log/entries", v1), range(12)))
        second = list(pool.map(lambda _: post("/rekor/api/v2/log/entries", v2), range(12)))
    assert sorted(r.status_code for r in first) == [201] + [409] * 11, [r.text for r in first]
    assert len({r.headers["location"] for r in first}) == 1
    for conflict in (r for r in first if r.status_code == 409):
        _check(conflict, 409, "an equivalent entry already exists")
    assert sorted(r.status_code for r in second) == [200] * 11 + [201]
    assert len({r.json()["logIndex"] for r in second}) == 1


def test_the_log_holds_no_traceback_and_no_secret(
    hostile_stack: RunningStack, client: httpx.Client
) -> None:
    def records_so_far() -> list[dict[str, Any]]:
        return [json.loads(line) for line in hostile_stack.output().splitlines()
                if line.startswith("{") and line.endswith("}")]

    def userinfo_records() -> int:
        return sum(r.get("path") == "/oidc/userinfo" for r in records_so_far())

    before = userinfo_records()
    token = hostile_stack.token()
    wrong = {"grant_type": "password", "client_id": "sigstore", "username": USER,
             "password": PASSWORD + "-wrong"}  # fmt: skip
    client.post("/oidc/token", data=wrong)
    client.post("/api/v2/signingCert", json={"publicKeyRequest": {}},
                headers={"Authorization": "Bearer " + token})  # fmt: skip
    client.get("/oidc/userinfo", headers={"Authorization": "Bearer " + token})

    # the last request's access record has reached the file (the log is written after the answer)
    deadline = time.monotonic() + 60
    while userinfo_records() == before:
        assert time.monotonic() < deadline, "no access record of /oidc/userinfo"
        time.sleep(0.05)
    records = records_so_far()
    assert records, "no JSON log records"
    text = json.dumps(records)
    assert "Traceback" not in text
    assert not [r for r in records if r.get("level") in ("error", "critical")], [
        r for r in records if r.get("level") in ("error", "critical")
    ][:3]
    assert token not in text and token.split(".")[2] not in text
    assert PASSWORD not in text


def test_certificate_with_a_malformed_extension_is_a_named_400(client: httpx.Client) -> None:
    """cryptography parses extensions lazily: a broken BasicConstraints value (BOOLEAN 0x05,
    not DER) used to escape from the CT service as a ValueError (500)."""
    root = base64.b64decode(client.get("/ctlog/ct/v1/get-roots").json()["certificates"][0])
    oid = root.find(bytes.fromhex("551d13"))  # id-ce-basicConstraints
    value = root.find(bytes.fromhex("30060101ff"), oid)  # SEQUENCE { BOOLEAN TRUE, ... }
    assert oid > 0 and value > oid
    broken = root[: value + 2] + bytes.fromhex("010105") + root[value + 5 :]
    chain = [base64.b64encode(broken).decode(), base64.b64encode(root).decode()]
    for path in ("/ctlog/ct/v1/add-chain", "/ctlog/ct/v1/add-pre-chain"):
        response = client.post(path, json={"chain": chain})
        _check(response, 400, "chain[0] is not a DER X.509 certificate with well-formed extensions")


def _read_until_closed(sock: socket.socket, limit: float = 20.0) -> tuple[bytes, float]:
    start = time.monotonic()
    raw = b""
    sock.settimeout(limit)
    try:
        while chunk := sock.recv(65536):
            raw += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return raw, time.monotonic() - start


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /ctlog/ct/v1/add-chain HTTP/1.1\r\nHost: localhost\r\n"
         b"Content-Type: application/json\r\nContent-Length: 300000\r\n\r\n", b"413"),
        (b"POST /nonexistent HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n",
         b"404"),
    ],
    ids=["413-too-large", "404-unknown-path"],
)
def test_an_answer_given_before_the_body_was_read_closes_the_connection(
    hostile_stack: RunningStack, head: bytes, status: bytes
) -> None:
    """The rest of an unread body must never be taken for the next request's head (which then
    escaped the head timeout and size limit); the server closes such a connection, as h11 does."""
    with socket.create_connection(("127.0.0.1", hostile_stack.port), timeout=30) as sock:
        sock.sendall(head + b" " * 10)
        sock.settimeout(10)
        raw = sock.recv(65536)
        assert raw.startswith(b"HTTP/1.1 " + status), raw[:200]
        # Said, not only done: a pooling client must not send its next request down this one.
        assert b"\r\nconnection: close\r\n" in raw.lower(), raw[:300]
        # Keep trickling what would be a never-ending header: the server must not wait for it.
        start, closed = time.monotonic(), False
        sock.settimeout(0.2)
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ")
            while time.monotonic() - start < 15 and not closed:
                sock.sendall(b"a" * 512)
                with contextlib.suppress(TimeoutError):
                    closed = sock.recv(65536) == b""
        closed = closed or time.monotonic() - start < 15  # a send failed: closed by the server
    assert closed, "the connection stayed open behind a never-ending head"


def test_a_connection_that_sends_nothing_is_closed(hostile_stack: RunningStack) -> None:
    with socket.create_connection(("127.0.0.1", hostile_stack.port), timeout=30) as sock:
        raw, seconds = _read_until_closed(sock, limit=25)
    assert seconds < 15, seconds
    assert raw == b"" or raw.startswith(b"HTTP/1.1 408"), raw[:200]


def _certificate_with_a_duplicate_extension() -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A self-signed certificate whose extension 1.2.3.4.5.6 appears twice (RFC 5280 §4.2
    forbids it; cryptography's builder refuses it, so the TBS is edited with asn1crypto)."""
    import datetime as dt

    from asn1crypto import x509 as asn1_x509
    from cryptography import x509

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "duplicate")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(7)
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5.6"),
                                                  b"\x05\x00"), critical=False)
        .sign(key, hashes.SHA256())
    )
    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    extensions = parsed["tbs_certificate"]["extensions"]
    extensions.append(extensions[0].copy())
    return parsed.dump(force=True), key


def test_a_certificate_with_a_duplicate_extension_is_never_a_500(client: httpx.Client) -> None:
    der, key = _certificate_with_a_duplicate_extension()
    chain = {"chain": [base64.b64encode(der).decode()]}
    _check(client.post("/ctlog/ct/v1/add-chain", json=chain), 400, "well-formed extensions")
    data = os.urandom(32)
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der)
    pem += b"-----END CERTIFICATE-----\n"
    signature = base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()
    entry = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(data).hexdigest()}},
        "signature": {"content": signature,
                      "publicKey": {"content": base64.b64encode(pem).decode()}}}}  # fmt: skip
    logged = client.post("/api/v1/log/entries", json=entry)
    assert logged.status_code < 500, logged.text  # logged (findable by key) or refused, by name
