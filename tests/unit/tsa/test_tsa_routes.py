"""The TSA's HTTP routes in-process: both dialects, hostile inputs, 503 on an untrusted clock."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import core, tsp
from cryptography import x509
from rfc3161_client import VerifierBuilder, decode_timestamp_response
from starlette.testclient import TestClient
from tsa_fixtures import *  # noqa: F403  (the TSA test fixtures)

from keyless.errors import Unavailable
from keyless.formats.tsp import encode_query, parse_query
from keyless.services.tsa import (
    ClockPolicy,
    TimestampService,
    TsaCredentials,
    TsaSettings,
    load_or_create_credentials,
)
from keyless.services.tsa.standalone import create_app

URL = "/api/v1/timestamp"
DER = {"Content-Type": "application/timestamp-query"}
#: A DER client that wants RFC 3161 rejections (openssl ts) rather than JSON errors.
DER_REPLY = {**DER, "Accept": "application/timestamp-reply"}


@pytest.fixture
def service(credentials: TsaCredentials) -> TimestampService:
    return TimestampService(credentials, TsaSettings(policies=("1.3.6.1.4.1.57264.2", "1.2.3")))


@pytest.fixture
def client(service: TimestampService) -> Iterator[TestClient]:
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        yield c


def _verify(credentials: TsaCredentials, body: bytes, message: bytes) -> Any:
    resp = decode_timestamp_response(body)
    leaf, root = credentials.chain
    VerifierBuilder().tsa_certificate(leaf).add_root_certificate(root).build().verify_message(
        resp, message
    )
    return resp


def _status(body: bytes) -> tuple[str, set[str] | None]:
    status = tsp.PKIStatusInfo.load(core.Sequence.load(body)[0].dump())
    return status["status"].native, status["fail_info"].native


def test_der_query_is_timestamped(client: TestClient, credentials: TsaCredentials) -> None:
    message = os.urandom(64)
    query = encode_query(hashlib.sha256(message).digest(), nonce=1234, cert_req=True)
    r = client.post(URL, content=query, headers=DER)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/timestamp-reply"
    resp = _verify(credentials, r.content, message)
    assert resp.tst_info.nonce == 1234
    assert len(resp.signed_data.certificates) == 1


def test_json_query_as_sigstore_js(client: TestClient, credentials: TsaCredentials) -> None:
    message = os.urandom(64)
    body = {
        "artifactHash": base64.b64encode(hashlib.sha256(message).digest()).decode(),
        "hashAlgorithm": "sha256",
    }
    r = client.post(URL, json=body)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/timestamp-reply"
    resp = _verify(credentials, r.content, message)
    assert len(resp.signed_data.certificates) == 0  # no certificates requested
    assert resp.tst_info.nonce is None


def test_json_certificates_nonce_and_policy(
    client: TestClient, credentials: TsaCredentials
) -> None:
    message = b"m"
    body = {
        "artifactHash": base64.b64encode(hashlib.sha512(message).digest()).decode(),
        "hashAlgorithm": "sha512",
        "certificates": True,
        "nonce": 77,
        "tsaPolicyOID": "1.2.3",
    }
    r = client.post(URL, json=body)
    assert r.status_code == 200
    resp = _verify(credentials, r.content, message)
    assert (resp.tst_info.nonce, resp.tst_info.policy.dotted_string) == (77, "1.2.3")
    assert len(resp.signed_data.certificates) == 1


def test_certchain_is_pem_leaf_first(client: TestClient, credentials: TsaCredentials) -> None:
    r = client.get(URL + "/certchain")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/pem-certificate-chain")
    assert x509.load_pem_x509_certificates(r.content) == list(credentials.chain)


def test_serials_are_unique_and_survive_restart(
    credentials: TsaCredentials, tmp_path: Path
) -> None:
    creds = load_or_create_credentials(tmp_path / "tsa")
    query = encode_query(b"\x00" * 32)
    serials = set()
    for _ in range(2):  # two "process lifetimes" over the same credentials directory
        service = TimestampService(load_or_create_credentials(tmp_path / "tsa"))
        with TestClient(create_app(service)) as c:
            for _ in range(200):
                r = c.post(URL, content=query, headers=DER)
                serials.add(decode_timestamp_response(r.content).tst_info.serial_number)
    assert len(serials) == 400
    assert all(0 < s < 2**160 and s.bit_length() > 128 for s in serials)
    assert creds.chain_der == TimestampService(creds).chain_der


GOOD = encode_query(b"\x00" * 32)
SHA1 = bytes(
    tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha1"},
                "hashed_message": b"0" * 20,
            },
        }
    ).dump()
)
HOSTILE_HTTP: list[tuple[str, dict[str, str], bytes, int, str | set[str]]] = [
    # (name, headers, body, status, DER failure bits or "json")
    ("garbage der", DER_REPLY, b"\x00\x01garbage", 400, {"bad_data_format"}),
    ("empty der", DER_REPLY, b"", 400, {"bad_data_format"}),
    ("sha1 der", DER_REPLY, SHA1, 400, {"bad_alg"}),
    ("json body as der", DER_REPLY, b'{"artifactHash":"x"}', 400, {"bad_data_format"}),
    # contracts.md §5: without that Accept, the same refusals are JSON
    ("garbage der, json error", DER, b"\x00\x01garbage", 400, "json"),
    ("empty der, json error", DER, b"", 400, "json"),
    ("sha1 der, json error", DER, SHA1, 400, "json"),
    ("json body as der, json error", DER, b'{"artifactHash":"x"}', 400, "json"),
    ("no content type, json error", {}, b"\x30\x03\x02\x01\x01", 400, "json"),
    ("der body as json", {"Content-Type": "application/json"}, GOOD, 400, "json"),
    ("json array", {"Content-Type": "application/json"}, b"[1,2]", 400, "json"),
    (
        "json sha1",
        {"Content-Type": "application/json"},
        b'{"artifactHash":"AAAAAAAAAAAAAAAAAAAAAAAAAAA=","hashAlgorithm":"sha1"}',
        400,
        "json",
    ),
    (
        "unknown policy der",
        DER_REPLY,
        encode_query(b"\x00" * 32, policy="1.9.9"),
        400,
        {"unaccepted_policy"},
    ),
    (
        "unknown policy json",
        {"Content-Type": "application/json"},
        b'{"artifactHash":"' + base64.b64encode(b"\x00" * 32) + b'","hashAlgorithm":"sha256",'
        b'"tsaPolicyOID":"1.9.9"}',
        400,
        "json",
    ),
    ("text/plain", {"Content-Type": "text/plain"}, GOOD, 415, "json"),
    ("form", {"Content-Type": "application/x-www-form-urlencoded"}, GOOD, 415, "json"),
    ("oversized der", DER, b"\x30" * 5000, 413, "json"),
    ("oversized json", {"Content-Type": "application/json"}, b" " * 2000, 413, "json"),
    ("bad content-length", {**DER, "Content-Length": "abc"}, GOOD, 400, "json"),
]


@pytest.mark.parametrize(
    ("headers", "body", "status", "expect"),
    [h[1:] for h in HOSTILE_HTTP],
    ids=[h[0] for h in HOSTILE_HTTP],
)
def test_hostile_inputs_get_4xx_never_500(
    client: TestClient, headers: dict[str, str], body: bytes, status: int, expect: Any
) -> None:
    r = client.post(URL, content=body, headers=headers)
    assert r.status_code == status, r.content
    if expect == "json":
        assert r.headers["content-type"] == "application/json"
        err = r.json()
        assert err["code"] == status and err["message"]
    else:
        assert r.headers["content-type"] == "application/timestamp-reply"
        assert _status(r.content) == ("rejection", expect)


def test_octet_stream_and_missing_type_are_read_as_der(client: TestClient) -> None:
    for headers in ({"Content-Type": "application/octet-stream"}, {}):
        r = client.post(URL, content=GOOD, headers=headers)
        assert r.status_code == 200
        assert _status(r.content) == ("granted", None)


def test_wrong_method(client: TestClient) -> None:
    assert client.get(URL).status_code == 405


class _Refusing:
    """A clock guard whose clock is never trusted."""

    def now(self) -> float:
        raise Unavailable("the wall clock stepped by +5.000 s", retry_after=5)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


def test_untrusted_clock_answers_503_with_retry_after(credentials: TsaCredentials) -> None:
    service = TimestampService(credentials, guard=_Refusing())  # type: ignore[arg-type]
    with TestClient(create_app(service)) as c:
        r = c.post(URL, content=GOOD, headers=DER_REPLY)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert _status(r.content) == ("rejection", {"time_not_available"})
        r = c.post(URL, content=GOOD, headers=DER)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert r.json() == {"code": 503, "message": "the wall clock stepped by +5.000 s"}
        r = c.post(
            URL,
            json={"artifactHash": base64.b64encode(b"\0" * 32).decode(), "hashAlgorithm": "sha256"},
        )
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert r.json()["code"] == 503


async def test_drifted_clock_found_by_fake_ntp_answers_503(
    credentials: TsaCredentials, fake_ntp: Any
) -> None:
    fake_ntp.offset = 10.0
    settings = TsaSettings(clock=ClockPolicy(ntp_servers=(fake_ntp.address,), ntp_timeout=30))
    service = TimestampService(credentials, settings)
    with TestClient(create_app(service)) as c:  # lifespan runs the first NTP round
        assert c.post(URL, content=GOOD, headers=DER).status_code == 503
        fake_ntp.offset = 0.0
        await service.guard.check_ntp()
        assert c.post(URL, content=GOOD, headers=DER).status_code == 200


def test_expired_chain_answers_503(credentials: TsaCredentials) -> None:
    late = credentials.not_after.timestamp() + 10
    service = TimestampService(credentials, clock=lambda: late)
    with TestClient(create_app(service)) as c:
        r = c.post(URL, content=GOOD, headers=DER_REPLY)
        assert r.status_code == 503
        assert _status(r.content) == ("rejection", {"time_not_available"})


def test_public_api_for_the_trusted_root(service: TimestampService) -> None:
    assert service.url_path == "/api/v1/timestamp"
    assert len(service.chain_der) == 2
    leaf = x509.load_der_x509_certificate(service.chain_der[0])
    assert leaf == service.credentials.chain[0]


class _ThreadRecordingSigner:
    """A Signer that is not in-process (like PKCS#11); records whether it ran on an event loop."""

    def __init__(self) -> None:
        from keyless.keys import InMemorySigner, generate_key

        self._inner = InMemorySigner(generate_key())
        self.on_loop: list[bool] = []

    def public_key(self) -> Any:
        return self._inner.public_key()

    def sign(self, data: bytes) -> bytes:
        import asyncio

        try:
            asyncio.get_running_loop()
            self.on_loop.append(True)
        except RuntimeError:
            self.on_loop.append(False)
        return self._inner.sign(data)


def test_external_signer_signs_off_the_event_loop(tmp_path: Path) -> None:
    signer = _ThreadRecordingSigner()
    creds = load_or_create_credentials(tmp_path / "tsa", leaf_signer=signer)
    with TestClient(create_app(TimestampService(creds))) as c:
        message = b"hsm"
        query = encode_query(hashlib.sha256(message).digest(), cert_req=True)
        r = c.post(URL, content=query, headers=DER)
        assert r.status_code == 200
        _verify(creds, r.content, message)
    assert signer.on_loop == [False]  # signed in a worker thread, not on the loop


def test_gen_time_is_the_nearest_second(credentials: TsaCredentials) -> None:
    base = float(int(credentials.not_before.timestamp()) + 3600)
    for offset, expected in [(0.2, base), (0.49, base), (0.5, base + 1), (0.9, base + 1)]:
        wall = base + offset
        service = TimestampService(credentials, clock=lambda w=wall: w, monotonic=lambda: 0.0)
        resp = decode_timestamp_response(service.timestamp(parse_query(GOOD)))
        assert resp.tst_info.gen_time.timestamp() == expected
        assert resp.tst_info.accuracy.seconds == 1


def test_accuracy_must_cover_rounding_and_drift() -> None:
    from keyless.errors import ConfigError

    TsaSettings(accuracy_seconds=2, clock=ClockPolicy(max_drift=1.5))
    TsaSettings(accuracy_seconds=0, clock=ClockPolicy(max_drift=5))  # no accuracy claimed
    with pytest.raises(ConfigError, match="cannot cover"):
        TsaSettings(accuracy_seconds=1, clock=ClockPolicy(max_drift=1.0))


def test_timestamps_spend_a_per_client_budget(service: TimestampService) -> None:
    """The TSA signs for anyone: a client that spent its budget gets 429 + Retry-After (JSON),
    and the budget is per client address."""
    from starlette.applications import Starlette

    from keyless.http.budget import ClientBudget
    from keyless.http.errors import EXCEPTION_HANDLERS
    from keyless.services.tsa.routes import TIMESTAMP_COST, routes

    budget = ClientBudget(burst=3 * TIMESTAMP_COST, rate=0.001)
    app = Starlette(routes=routes(service, budget), exception_handlers=EXCEPTION_HANDLERS)
    query = encode_query(hashlib.sha256(b"budget").digest())
    with TestClient(app, client=("192.0.2.7", 1234)) as first:
        assert [first.post(URL, content=query, headers=DER).status_code for _ in range(3)] == [
            200, 200, 200
        ]
        spent = first.post(URL, content=query, headers=DER)
    assert spent.status_code == 429
    assert "budget" in spent.json()["message"]
    assert int(spent.headers["Retry-After"]) >= 1
    with TestClient(app, client=("192.0.2.8", 1234)) as other:
        assert other.post(URL, content=query, headers=DER).status_code == 200
