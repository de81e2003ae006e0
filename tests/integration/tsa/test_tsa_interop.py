"""The TSA over real HTTP (uvicorn on 127.0.0.1) against openssl, rfc3161-client, sigstore-python
and sigstore-js — each verifying the way the real tool or client does (protocols.md §8,
interop.md §5 items 4 and 11)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rfc3161_client import (
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)
from rfc3161_client.base import HashAlgorithm

from keyless.services.tsa import TimestampService, TsaCredentials, load_or_create_credentials
from keyless.services.tsa.standalone import create_app

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent


def _root_conftest() -> ModuleType:
    """tests/conftest.py loaded by path: ``from conftest import`` resolves to whichever
    conftest.py pytest imported last once sub-folders have their own."""
    spec = importlib.util.spec_from_file_location(
        "keyless_tests_root_conftest", HERE.parent.parent / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_ROOT = _root_conftest()
INTEROP: Path = _ROOT.INTEROP
require = _ROOT.require
require_program = _ROOT.require_program


@dataclass
class RunningTsa:
    url: str  # the signing-config URL: P + /api/v1/timestamp
    credentials: TsaCredentials
    root_pem: Path
    leaf_pem: Path
    chain_pem: Path
    other_chain_pem: Path  # a different TSA's chain, for negative tests


def _pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTsa]:
    """A real uvicorn serving the TSA on a socket bound to a free 127.0.0.1 port."""
    work = tmp_path_factory.mktemp("tsa-http")
    creds = load_or_create_credentials(work / "tsa")
    other = load_or_create_credentials(work / "other")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(TimestampService(creds)), log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    leaf, root = creds.chain
    try:
        yield RunningTsa(
            url=f"http://127.0.0.1:{port}/api/v1/timestamp",
            credentials=creds,
            root_pem=_pem(work / "root.pem", root.public_bytes(serialization.Encoding.PEM)),
            leaf_pem=_pem(work / "leaf.pem", leaf.public_bytes(serialization.Encoding.PEM)),
            chain_pem=_pem(work / "chain.pem", creds.chain_pem),
            other_chain_pem=_pem(work / "other.pem", other.chain_pem),
        )
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# ---- openssl ts ---------------------------------------------------------------------------


def _openssl(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = require_program("openssl")
    return subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, check=check, timeout=30
    )


def _post_der(url: str, query: bytes) -> httpx.Response:
    """POST a DER query as ``curl -H 'Content-Type: application/timestamp-query'`` would, asking
    for RFC 3161 replies even on refusal (without that Accept, refusals are JSON)."""
    headers = {
        "Content-Type": "application/timestamp-query",
        "Accept": "application/timestamp-reply",
    }
    return httpx.post(url, content=query, headers=headers, timeout=10)


@pytest.mark.parametrize("digest", ["sha256", "sha384", "sha512"])
def test_openssl_query_reply_verify(tsa: RunningTsa, tmp_path: Path, digest: str) -> None:
    data = _pem(tmp_path / "data.bin", os.urandom(1000))
    query = tmp_path / "q.tsq"
    _openssl("ts", "-query", "-data", data, f"-{digest}", "-cert", "-out", query)
    r = _post_der(tsa.url, query.read_bytes())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/timestamp-reply"
    reply = _pem(tmp_path / "r.tsr", r.content)
    text = _openssl("ts", "-reply", "-in", reply, "-text").stdout
    assert "Status: Granted." in text
    assert "Policy OID: 1.3.6.1.4.1.57264.2" in text
    assert "Accuracy: 0x01 seconds" in text
    # The whole chain as trust anchors (leaf -> root), as the issue asks; the response embeds the
    # leaf (certReq) and -queryfile also checks the nonce and imprint.
    ok = _openssl("ts", "-verify", "-data", data, "-in", reply, "-CAfile", tsa.chain_pem)
    assert "Verification: OK" in ok.stdout
    ok = _openssl("ts", "-verify", "-queryfile", query, "-in", reply, "-CAfile", tsa.root_pem)
    assert "Verification: OK" in ok.stdout


def test_openssl_without_cert_req_needs_the_leaf(tsa: RunningTsa, tmp_path: Path) -> None:
    data = _pem(tmp_path / "data.bin", b"no certificate requested")
    query = tmp_path / "q.tsq"
    _openssl("ts", "-query", "-data", data, "-sha256", "-out", query)  # certReq absent
    reply = _pem(tmp_path / "r.tsr", _post_der(tsa.url, query.read_bytes()).content)
    missing = _openssl(
        "ts", "-verify", "-data", data, "-in", reply, "-CAfile", tsa.root_pem, check=False
    )
    # certificates are only included when asked for
    assert missing.returncode != 0
    assert "signer certificate not found" in missing.stdout + missing.stderr, missing.stderr
    ok = _openssl(
        "ts", "-verify", "-data", data, "-in", reply, "-CAfile", tsa.root_pem,
        "-untrusted", tsa.leaf_pem,
    )  # fmt: skip
    assert "Verification: OK" in ok.stdout


def test_openssl_rejects_wrong_chain_and_tampering(tsa: RunningTsa, tmp_path: Path) -> None:
    data = _pem(tmp_path / "data.bin", b"the real data")
    other_data = _pem(tmp_path / "other.bin", b"the real dat4")
    query = tmp_path / "q.tsq"
    _openssl("ts", "-query", "-data", data, "-sha256", "-cert", "-out", query)
    body = _post_der(tsa.url, query.read_bytes()).content
    reply = _pem(tmp_path / "r.tsr", body)
    base = ["ts", "-verify", "-in"]
    assert _openssl(*base, reply, "-data", data, "-CAfile", tsa.chain_pem).returncode == 0
    wrong_chain = _openssl(*base, reply, "-data", data, "-CAfile", tsa.other_chain_pem, check=False)
    assert wrong_chain.returncode != 0
    assert "unable to get local issuer certificate" in wrong_chain.stdout + wrong_chain.stderr, (
        wrong_chain.stderr)
    wrong_data = _openssl(*base, reply, "-data", other_data, "-CAfile", tsa.chain_pem, check=False)
    assert wrong_data.returncode != 0
    assert "message imprint mismatch" in wrong_data.stdout + wrong_data.stderr, wrong_data.stderr
    # Flip one bit of the signed genTime inside the token: the signature must no longer verify.
    at = body.index(b"Z\x30") - 1  # last digit of genTime (GeneralizedTime ends in "Z")
    tampered = bytearray(body)
    tampered[at] ^= 0x01
    bad = _pem(tmp_path / "bad.tsr", bytes(tampered))
    assert _openssl(*base, bad, "-data", data, "-CAfile", tsa.chain_pem, check=False).returncode


def test_openssl_sees_a_rejection_for_sha1(tsa: RunningTsa, tmp_path: Path) -> None:
    data = _pem(tmp_path / "data.bin", b"x")
    query = tmp_path / "q.tsq"
    _openssl("ts", "-query", "-data", data, "-sha1", "-out", query)
    r = _post_der(tsa.url, query.read_bytes())
    assert r.status_code == 400
    reply = _pem(tmp_path / "r.tsr", r.content)
    text = _openssl("ts", "-reply", "-in", reply, "-text").stdout
    assert "Status: Rejected." in text
    assert "unrecognized or unsupported algorithm" in text


# ---- rfc3161-client, as sigstore-python uses it -------------------------------------------


def _sigstore_python_verifier(chain: list[bytes]) -> VerifierBuilder:
    """VerifierBuilder set up exactly as sigstore-python's ``_verify_signed_timestamp``."""
    from cryptography import x509

    certs = [x509.load_der_x509_certificate(c) for c in chain]
    builder = VerifierBuilder().tsa_certificate(certs[0]).add_root_certificate(certs[-1])
    for cert in certs[1:-1]:
        builder = builder.add_intermediate_certificate(cert)
    return builder


def test_rfc3161_client_request_and_verify(tsa: RunningTsa) -> None:
    signature = os.urandom(71)
    request = (
        TimestampRequestBuilder()
        .hash_algorithm(HashAlgorithm.SHA256)
        .data(signature)
        .nonce(nonce=True)
        .build()
    )
    r = _post_der(tsa.url, request.as_bytes())
    assert r.status_code == 200
    response = decode_timestamp_response(r.content)
    assert response.tst_info.nonce == request.nonce
    assert abs(response.tst_info.gen_time - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)
    assert (
        _sigstore_python_verifier(tsa.credentials.chain_der)
        .build()
        .verify_message(response, signature)
    )
    # The nonce check sigstore-python could add (VerifierBuilder.from_request) passes too.
    from cryptography import x509

    leaf, root = (x509.load_der_x509_certificate(c) for c in tsa.credentials.chain_der)
    builder = VerifierBuilder.from_request(request).tsa_certificate(leaf).add_root_certificate(root)
    assert builder.build().verify_message(response, signature)
    with pytest.raises(VerificationError):
        _sigstore_python_verifier(tsa.credentials.chain_der).build().verify_message(
            response, signature + b"x"
        )
    other = load_or_create_credentials(Path(tsa.other_chain_pem).parent / "other")
    with pytest.raises(VerificationError):
        _sigstore_python_verifier(other.chain_der).build().verify_message(response, signature)


def _trusted_root(tsa: RunningTsa, path: Path) -> Path:
    """A minimal trusted_root.json whose timestampAuthorities is this TSA (protocols.md §7)."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    log = {
        "baseUrl": "http://127.0.0.1:9",
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": b64(spki),
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            "validFor": {"start": "2020-01-01T00:00:00Z"},
        },
        "logId": {"keyId": b64(hashlib.sha256(spki).digest())},
    }
    chain = tsa.credentials.chain_der
    root = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [log],
        "ctlogs": [log],
        "certificateAuthorities": [
            {
                "subject": {"organization": "keyless", "commonName": "unused"},
                "uri": "http://127.0.0.1:9",
                "certChain": {"certificates": [{"rawBytes": b64(chain[-1])}]},
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }
        ],
        "timestampAuthorities": [
            {
                "subject": {"organization": "keyless", "commonName": "keyless TSA"},
                "uri": tsa.url,
                "certChain": {"certificates": [{"rawBytes": b64(c)} for c in chain]},
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }
        ],
    }
    path.write_text(json.dumps(root))
    return path


def test_sigstore_python_client_and_verifier(tsa: RunningTsa, tmp_path: Path) -> None:
    python = INTEROP / "venv" / "bin" / "python"
    require(python.exists(), "sigstore-python in .interop/venv (run `make interop`)")
    root = _trusted_root(tsa, tmp_path / "trusted_root.json")
    out = subprocess.run(
        [str(python), str(HERE / "sigstore_python_tsa.py"), tsa.url, str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["verified"] is True
    assert result["tampered_verified"] is False
    assert result["certificates"] == 1  # sigstore-python asks for certReq=true


# ---- sigstore-js --------------------------------------------------------------------------


def test_sigstore_js_json_request_verifies(tsa: RunningTsa, node_path: Path) -> None:
    out = subprocess.run(
        [
            require_program("node"),
            str(HERE / "sigstore_js_tsa.js"),
            tsa.url,
            str(tsa.chain_pem),
            str(tsa.other_chain_pem),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": str(node_path)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["verified"] is True
    assert result["tamperedRejected"] is True
    assert result["otherChainRejected"] is True
    response = decode_timestamp_response(base64.b64decode(result["der"]))
    assert len(response.signed_data.certificates) == 0  # JSON without "certificates"
    assert response.tst_info.nonce is None
    gen = dt.datetime.fromisoformat(result["genTime"].replace("Z", "+00:00"))
    assert gen == response.tst_info.gen_time


def test_certchain_over_http(tsa: RunningTsa) -> None:
    r = httpx.get(tsa.url + "/certchain", timeout=10)
    assert r.status_code == 200
    assert r.content == tsa.credentials.chain_pem
