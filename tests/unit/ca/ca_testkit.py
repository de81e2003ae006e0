"""Shared test helpers for the CA and CT log: a local OIDC issuer and an assembled CA stack.

The issuer's JWKS is handed to :class:`keyless.identity.IdentityVerifier` through ``local_jwks``
so no network is involved; tokens are real ES256 JWTs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.formats import sct as sctmod
from keyless.identity import IdentityVerifier, IssuerConfig
from keyless.keys import InMemorySigner
from keyless.services.ca import CAService, TokenReplayGuard, load_or_create
from keyless.services.ctlog import CTLogService
from memory_log import MemoryKeyValue, MemoryLogEngine

ISSUER = "https://issuer.test"


def _root_conftest() -> Any:
    """tests/conftest.py, loaded by path: ``import conftest`` may resolve to another folder's
    conftest.py when several are on sys.path (pytest's prepend import mode)."""
    import importlib.util
    import sys

    name = "keyless_tests_root_conftest"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "conftest.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


require = _root_conftest().require
require_program = _root_conftest().require_program
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

GITHUB_CLAIMS: dict[str, Any] = {
    "sub": "repo:octo/app:ref:refs/heads/main",
    "job_workflow_ref": "octo/app/.github/workflows/release.yml@refs/heads/main",
    "sha": "a" * 40,
    "event_name": "push",
    "repository": "octo/app",
    "workflow": "Release",
    "ref": "refs/heads/main",
    "job_workflow_sha": "b" * 40,
    "runner_environment": "github-hosted",
    "repository_id": "123",
    "repository_owner": "octo",
    "repository_owner_id": "456",
    "repository_visibility": "public",
    "workflow_ref": "octo/app/.github/workflows/release.yml@refs/heads/main",
    "workflow_sha": "b" * 40,
    "run_id": "789",
    "run_attempt": "1",
}


class TestIssuer:
    """An OIDC issuer whose JWKS is served in-process; mints ES256 identity tokens."""

    __test__ = False

    def __init__(self, issuer: str = ISSUER, clock: Callable[[], float] = time.time) -> None:
        self.issuer = issuer
        self.clock = clock
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "test-key"

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="ES256")
        return {"keys": [jwk]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": "sigstore",
            "sub": "user-1",
            "email": "alice@example.com",
            "email_verified": True,
            "iat": now - 5,
            "exp": now + 300,
            # unique like real issuers' (GitHub, the embedded provider): one token per call
            "jti": secrets.token_urlsafe(12),
        }
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def token(self, *, key: Any = None, kid: str | None = None, **overrides: Any) -> str:
        return jwt.encode(
            self.claims(**overrides),
            key or self.key,
            algorithm="ES256",
            headers={"kid": kid or self.kid},
        )


@dataclass
class CAStack:
    ca: CAService
    ctlog: CTLogService
    engine: MemoryLogEngine
    kv: MemoryKeyValue
    issuers: dict[str, TestIssuer]
    ct_signer: InMemorySigner


def build_stack(
    ca_dir: Path,
    *,
    clock: Callable[[], float] = time.time,
    replay: bool = True,
    http: httpx.AsyncClient | None = None,
) -> CAStack:
    """A CA + CT log over the in-memory engine, trusting an email issuer and a GitHub issuer."""
    material = load_or_create(ca_dir, clock=clock)
    email = TestIssuer(ISSUER, clock)
    github = TestIssuer(GITHUB_ISSUER, clock)
    verifier = IdentityVerifier(
        [IssuerConfig(ISSUER, "email"), IssuerConfig(GITHUB_ISSUER, "github-workflow")],
        http or httpx.AsyncClient(),
        clock,
        local_jwks={ISSUER: email.jwks, GITHUB_ISSUER: github.jwks},
    )
    engine = MemoryLogEngine(seed=2)
    kv = MemoryKeyValue(clock)
    ct_signer = InMemorySigner(ec.generate_private_key(ec.SECP256R1()))
    ctlog = CTLogService(
        engine=engine,
        kv=kv,
        signer=ct_signer,
        roots=[material.root],
        origin="localhost/ctlog",
        clock=clock,
    )
    ca = CAService(
        material=material,
        identity=verifier,
        ctlog=ctlog,
        replay_guard=TokenReplayGuard(enabled=replay),
        clock=clock,
    )
    return CAStack(ca, ctlog, engine, kv, {"email": email, "github": github}, ct_signer)


def make_csr(key: ec.EllipticCurvePrivateKey | None = None) -> tuple[Any, bytes]:
    """A sigstore-python-style CSR: empty subject, critical BasicConstraints CA:false."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM)


def pop_request(token: str, key: ec.EllipticCurvePrivateKey, challenge: str) -> dict[str, Any]:
    """A sigstore-js-style v2 body: PEM public key + signature over the challenge."""
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    proof = key.sign(challenge.encode(), ec.ECDSA(hashes.SHA256()))
    return {
        "credentials": {"oidcIdentityToken": token},
        "publicKeyRequest": {
            "publicKey": {"algorithm": "ECDSA", "content": pem.decode()},
            "proofOfPossession": base64.b64encode(proof).decode(),
        },
    }


def independent_sct_check(
    leaf: x509.Certificate, issuer: x509.Certificate, ct_public_key: Any
) -> sctmod.SignedCertificateTimestamp:
    """Recompute RFC 6962 §3.2 precert signed data by hand and verify the embedded SCT.

    Parses the SCT list bytes directly (not through keyless.formats.sct's decoder) and builds
    the signed structure with struct packing, so a bug shared by encoder and decoder shows.
    """
    import struct

    ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2"))
    assert not ext.critical
    lib_scts = list(ext.value)  # cryptography's own parser
    assert len(lib_scts) == 1
    lib = lib_scts[0]
    assert lib.entry_type == x509.certificate_transparency.LogEntryType.PRE_CERTIFICATE
    spki = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tbs = leaf.tbs_precertificate_bytes
    ts = lib.timestamp.replace(tzinfo=None)
    import datetime as dt

    ts_ms = round((ts - dt.datetime(1970, 1, 1)).total_seconds() * 1000)
    signed = (
        struct.pack(">BBQH", 0, 0, ts_ms, 1)
        + hashlib.sha256(spki).digest()
        + len(tbs).to_bytes(3, "big")
        + tbs
        + struct.pack(">H", len(lib.extension_bytes))
        + lib.extension_bytes
    )
    ct_spki = ct_public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert lib.log_id == hashlib.sha256(ct_spki).digest()
    ct_public_key.verify(lib.signature, signed, ec.ECDSA(hashes.SHA256()))
    (ours,) = sctmod.decode_sct_list(ext.value.public_bytes())
    assert ours.timestamp_ms == ts_ms
    return ours


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def trusted_root(stack: CAStack, ca_url: str, ct_url: str) -> dict[str, Any]:
    """A trusted_root.json (protobuf-specs TrustedRoot) naming this CA chain and CT log key.

    The ``tlogs`` entry reuses the CT key: verifiers insist on at least one tlog but the
    certificate checks exercised here never consult it.
    """
    ct_spki = stack.ct_signer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    valid = {"start": "2020-01-01T00:00:00Z"}
    log = {
        "hashAlgorithm": "SHA2_256",
        "publicKey": {"rawBytes": _b64(ct_spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                      "validFor": valid},
        "logId": {"keyId": _b64(stack.ctlog.log_id)},
    }
    return {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{**log, "baseUrl": ca_url}],
        "certificateAuthorities": [
            {
                "subject": {"organization": "keyless", "commonName": "keyless-intermediate"},
                "uri": ca_url,
                "certChain": {"certificates": [{"rawBytes": _b64(d)}
                                               for d in stack.ca.chain_der()]},
                "validFor": valid,
            }
        ],
        "ctlogs": [{**log, "baseUrl": ct_url}],
        "timestampAuthorities": [],
    }


class UvicornThread:
    """Serve an ASGI app with uvicorn on a free 127.0.0.1 port in a background thread."""

    def __init__(self, app: Any) -> None:
        import threading

        import uvicorn

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
