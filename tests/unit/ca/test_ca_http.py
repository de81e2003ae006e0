"""The CA's HTTP API in-process: both dialects, the Fulcio profile, SCT, refusals."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from ca_testkit import (
    GITHUB_CLAIMS,
    CAStack,
    build_stack,
    independent_sct_check,
    make_csr,
    pop_request,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from starlette.applications import Starlette

from keyless.formats.sct import POISON_OID
from keyless.formats.x509profile import certificate_pem, strip_extension
from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.services.ca.routes import routes as ca_routes
from keyless.services.ca.service import IssuedCertificate
from keyless.services.ctlog.entries import TimestampedEntry

SCT_OID = "1.3.6.1.4.1.11129.2.4.2"


def _app(stack: CAStack) -> Starlette:
    return Starlette(routes=ca_routes(stack.ca), exception_handlers=EXCEPTION_HANDLERS)


@pytest.fixture
def stack(tmp_path: Path) -> CAStack:
    return build_stack(tmp_path / "ca")


@pytest.fixture
async def client(stack: CAStack) -> Any:
    transport = httpx.ASGITransport(app=_app(stack))
    async with httpx.AsyncClient(transport=transport, base_url="http://ca.test") as c:
        yield c


def _chain(resp: httpx.Response) -> list[x509.Certificate]:
    assert resp.status_code == 200, resp.text
    pems = resp.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    for pem in pems:
        lines = pem.split("\n")
        assert pem.endswith("-----END CERTIFICATE-----\n")
        assert all(len(line) <= 64 for line in lines)
        assert all(len(line) == 64 for line in lines[1:-3])
    return [x509.load_pem_x509_certificate(p.encode()) for p in pems]


async def post_csr(client: Any, csr: bytes, token: str) -> Any:
    """``POST /api/v2/signingCert`` in the CSR dialect (Fulcio's), the token as a bearer."""
    return await client.post(
        "/api/v2/signingCert",
        json={"certificateSigningRequest": base64.b64encode(csr).decode()},
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_csr_dialect_issues_the_fulcio_profile(client: Any, stack: CAStack) -> None:
    token = stack.issuers["email"].token()
    key, csr = make_csr()
    resp = await post_csr(client, csr, token)
    # the answer's form is Fulcio's and Starlette's JSONResponse's: compact JSON
    assert (resp.status_code, resp.headers["content-type"]) == (200, "application/json")
    assert resp.content == json.dumps(resp.json(), separators=(",", ":")).encode()
    leaf, inter, root = _chain(resp)
    assert leaf.subject == x509.Name([])
    assert leaf.issuer == inter.subject
    assert leaf.public_key() == key.public_key()
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(minutes=10)
    assert abs(leaf.not_valid_before_utc.timestamp() - time.time()) < 60
    oids = [e.oid.dotted_string for e in leaf.extensions]
    assert oids[:5] == ["2.5.29.15", "2.5.29.37", "2.5.29.14", "2.5.29.35", "2.5.29.17"]
    assert oids[-1] == SCT_OID
    assert oids[5:-1] == ["1.3.6.1.4.1.57264.1.1", "1.3.6.1.4.1.57264.1.8",
                          "1.3.6.1.4.1.57264.1.24"]
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.CODE_SIGNING]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.RFC822Name) == ["alice@example.com"]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    for ext in leaf.extensions:
        if ext.oid.dotted_string.startswith("1.3.6.1.4.1.57264."):
            assert not ext.critical
    raw = {e.oid.dotted_string: e.value.value for e in leaf.extensions
           if isinstance(e.value, x509.UnrecognizedExtension)}
    assert raw["1.3.6.1.4.1.57264.1.1"] == b"https://issuer.test"
    assert raw["1.3.6.1.4.1.57264.1.8"] == b"\x0c\x13https://issuer.test"
    assert raw["1.3.6.1.4.1.57264.1.24"] == b"\x0c\x06user-1"
    leaf.verify_directly_issued_by(inter)
    inter.verify_directly_issued_by(root)
    independent_sct_check(leaf, inter, stack.ct_signer.public_key())


async def test_the_chain_encoded_once_equals_a_fresh_encoding(client: Any, stack: CAStack) -> None:
    """The CA's PEM chain is encoded at start; answers must carry exactly its fresh encoding."""
    token = stack.issuers["email"].token()
    _key, csr = make_csr()
    resp = await post_csr(client, csr, token)
    pems = resp.json()["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    assert pems[1:] == [certificate_pem(c) for c in stack.ca.material.chain]
    leaf = x509.load_pem_x509_certificate(pems[0].encode())
    issued = IssuedCertificate(leaf, stack.ca.material.chain, sct=None)  # type: ignore[arg-type]
    assert issued.pem_chain() == pems


async def test_precert_in_log_matches_final_tbs(client: Any, stack: CAStack) -> None:
    token = stack.issuers["email"].token()
    key = ec.generate_private_key(ec.SECP256R1())
    resp = await client.post("/api/v2/signingCert",
                             json=pop_request(token, key, "alice@example.com"))
    leaf, inter, _ = _chain(resp)
    size, _ = await stack.engine.tree()
    stored = await stack.engine.entry(size - 1)
    entry = TimestampedEntry.from_merkle_tree_leaf(stored.leaf)
    assert entry.certificate == leaf.tbs_precertificate_bytes
    # and the precertificate kept in the entry bundle is the poisoned twin
    from keyless.services.ctlog.entries import parse_tile_leaf

    pre = x509.load_der_x509_certificate(parse_tile_leaf(stored.bundle_entry).precertificate or b"")
    poison = pre.extensions.get_extension_for_oid(x509.ObjectIdentifier(POISON_OID))
    assert poison.critical and isinstance(poison.value, x509.PrecertPoison)
    assert strip_extension(pre.tbs_certificate_bytes, POISON_OID) == leaf.tbs_precertificate_bytes
    pre.verify_directly_issued_by(inter)


async def test_github_token_gets_the_workflow_extensions(client: Any, stack: CAStack) -> None:
    gh = stack.issuers["github"]
    token = gh.token(email=None, email_verified=None, **GITHUB_CLAIMS)
    key = ec.generate_private_key(ec.SECP256R1())
    resp = await client.post("/api/v2/signingCert",
                             json=pop_request(token, key, GITHUB_CLAIMS["sub"]))
    leaf = _chain(resp)[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "https://github.com/octo/app/.github/workflows/release.yml@refs/heads/main"
    ]
    values = {int(e.oid.dotted_string.rsplit(".", 1)[1]): e.value.value for e in leaf.extensions
              if e.oid.dotted_string.startswith("1.3.6.1.4.1.57264.1.")}
    assert sorted(values) == [*range(1, 7), *range(8, 23), 24]
    assert values[1] == b"https://token.actions.githubusercontent.com"
    assert values[2] == b"push" and values[5] == b"octo/app"
    assert values[12] == b"\x0c\x1bhttps://github.com/octo/app"
    run = b"https://github.com/octo/app/actions/runs/789/attempts/1"
    assert values[21] == b"\x0c" + bytes([len(run)]) + run


async def test_token_in_body_wins_over_header(client: Any, stack: CAStack) -> None:
    token = stack.issuers["email"].token()
    key = ec.generate_private_key(ec.SECP256R1())
    resp = await client.post("/api/v2/signingCert",
                             json=pop_request(token, key, "alice@example.com"),
                             headers={"Authorization": "Bearer garbage"})
    assert resp.status_code == 200


def _bad_tokens(stack: CAStack) -> dict[str, tuple[str, str]]:
    email = stack.issuers["email"]
    now = int(time.time())
    other = ec.generate_private_key(ec.SECP256R1())
    unsigned = jwt.encode(email.claims(), key=None, algorithm="none")
    foreign = jwt.encode({**email.claims(), "iss": "https://evil.test"}, other, algorithm="ES256",
                         headers={"kid": email.kid})
    return {
        "expired": (email.token(iat=now - 3600, exp=now - 1800), "expired"),
        "wrong aud": (email.token(aud="someone-else"), "audience"),
        "wrong iss": (foreign, "not trusted"),
        "alg none": (unsigned, "not allowed"),
        "bad signature": (email.token(key=other), "signature"),
        "unknown kid": (email.token(kid="nope"), "key id"),
        "missing email_verified": (email.token(email_verified=None), "email_verified"),
        "email not verified": (email.token(email_verified=False), "email_verified"),
        "iat in future": (email.token(iat=now + 3600), "future"),
        "not a jwt": ("abc", "JWT"),
    }


@pytest.mark.parametrize("case", ["expired", "wrong aud", "wrong iss", "alg none", "bad signature",
                                  "unknown kid", "missing email_verified", "email not verified",
                                  "iat in future", "not a jwt"])
async def test_bad_tokens_are_refused_with_401(client: Any, stack: CAStack, case: str) -> None:
    token, needle = _bad_tokens(stack)[case]
    _key, csr = make_csr()
    resp = await post_csr(client, csr, token)
    assert resp.status_code == 401, resp.text
    body = resp.json()
    assert body["code"] == 401
    assert needle.lower() in body["message"].lower(), body["message"]


async def test_missing_token_is_401(client: Any) -> None:
    _, csr = make_csr()
    resp = await client.post("/api/v2/signingCert",
                             json={"certificateSigningRequest": base64.b64encode(csr).decode()})
    assert resp.status_code == 401
    assert "identity token" in resp.json()["message"]


def _bad_proofs(stack: CAStack) -> dict[str, tuple[dict[str, Any], str]]:
    token = stack.issuers["email"].token()
    key = ec.generate_private_key(ec.SECP256R1())
    wrong_challenge = pop_request(token, key, "bob@example.com")
    other_key = pop_request(token, ec.generate_private_key(ec.SECP256R1()), "alice@example.com")
    other_key["publicKeyRequest"]["publicKey"] = wrong_challenge["publicKeyRequest"]["publicKey"]
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak_pem = weak.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    p224 = ec.generate_private_key(ec.SECP224R1())
    bad_csr = bytearray(make_csr()[1])
    tampered = x509.load_pem_x509_csr(bytes(bad_csr)).public_bytes(serialization.Encoding.DER)
    tampered = tampered[:-4] + bytes(b ^ 0xFF for b in tampered[-4:])
    sha1_csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
                .sign(p224, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return {
        "signature over another email": (wrong_challenge, "could not be verified"),
        "signature by another key": (other_key, "could not be verified"),
        "proof not base64": ({**wrong_challenge, "publicKeyRequest": {
            **wrong_challenge["publicKeyRequest"], "proofOfPossession": "%%%"}}, "base64"),
        "garbage public key": ({**wrong_challenge, "publicKeyRequest": {
            "publicKey": {"content": "hello"}, "proofOfPossession": "AAAA"}}, "public key"),
        "RSA 1024": ({**wrong_challenge, "publicKeyRequest": {
            "publicKey": {"content": weak_pem.decode()}, "proofOfPossession": "AAAA"}}, "RSA"),
        "CSR bad signature": ({"credentials": {"oidcIdentityToken": token},
                               "certificateSigningRequest": base64.b64encode(tampered).decode()},
                              "could not be verified"),
        "CSR P-224": ({"credentials": {"oidcIdentityToken": token},
                       "certificateSigningRequest": base64.b64encode(sha1_csr).decode()}, "curve"),
        "no key at all": ({"credentials": {"oidcIdentityToken": token}}, "needs"),
        "not JSON object": ([1, 2], "JSON object"),  # type: ignore[dict-item]
    }


@pytest.mark.parametrize("case", ["signature over another email", "signature by another key",
                                  "proof not base64", "garbage public key", "RSA 1024",
                                  "CSR bad signature", "CSR P-224", "no key at all",
                                  "not JSON object"])
async def test_bad_proofs_are_refused_with_400(client: Any, stack: CAStack, case: str) -> None:
    body, needle = _bad_proofs(stack)[case]
    resp = await client.post("/api/v2/signingCert", content=json.dumps(body))
    assert resp.status_code == 400, resp.text
    assert needle.lower() in resp.json()["message"].lower(), resp.json()["message"]


async def test_token_replay_for_another_key_is_refused(client: Any, stack: CAStack) -> None:
    token = stack.issuers["email"].token()
    key = ec.generate_private_key(ec.SECP256R1())
    first = await client.post("/api/v2/signingCert",
                              json=pop_request(token, key, "alice@example.com"))
    assert first.status_code == 200
    size = (await stack.engine.tree())[0]
    again = await client.post("/api/v2/signingCert",
                              json=pop_request(token, key, "alice@example.com"))
    assert again.status_code == 200, "a retry with the same key must work"
    (leaf1, inter, _), (leaf2, _, _) = _chain(first), _chain(again)
    # the retry certifies the precertificate already logged: nothing new in the log
    assert (await stack.engine.tree())[0] == size
    assert leaf2.serial_number == leaf1.serial_number
    assert leaf2.tbs_precertificate_bytes == leaf1.tbs_precertificate_bytes
    leaf2.verify_directly_issued_by(inter)
    independent_sct_check(leaf2, inter, stack.ct_signer.public_key())
    other = ec.generate_private_key(ec.SECP256R1())
    resp = await client.post("/api/v2/signingCert",
                             json=pop_request(token, other, "alice@example.com"))
    assert resp.status_code == 401
    assert "already used" in resp.json()["message"]


#: Order of the P-256 group: (r, s) and (r, n - s) are both valid ECDSA signatures.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _high_s(token: str) -> str:
    """The same token with its ES256 signature's s replaced by n - s (ECDSA malleability)."""
    head, payload, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    s = int.from_bytes(raw[32:], "big")
    return f"{head}.{payload}.{_b64url(raw[:32] + (P256_ORDER - s).to_bytes(32, 'big'))}"


def _loose_base64(token: str) -> str:
    """The same token with unused low bits set in the signature's last base64url character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    assert last % 16 == 0  # 64 bytes: the last character carries 2 bits and 4 zero bits
    return token[:-1] + alphabet[last + 1]


VARIANTS: dict[str, Callable[[str], str]] = {
    "trailing newline": lambda t: t + "\n",
    "surrounding spaces": lambda t: f"  {t}\t",
    "high s": _high_s,
    "non-canonical base64url": _loose_base64,
}


@pytest.mark.parametrize("with_jti", [False, True], ids=["no jti", "jti"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_token_variants_do_not_certify_another_key(
    client: Any, stack: CAStack, variant: str, with_jti: bool
) -> None:
    """An equivalent encoding of a used token is the same token: it may not certify a second
    key (issue #13: the guard hashed the raw string)."""
    token = stack.issuers["email"].token(jti="token-1" if with_jti else None)  # None: no jti
    key = ec.generate_private_key(ec.SECP256R1())
    first = await client.post("/api/v2/signingCert",
                              json=pop_request(token, key, "alice@example.com"))
    assert first.status_code == 200, first.text
    other = ec.generate_private_key(ec.SECP256R1())
    resp = await client.post("/api/v2/signingCert",
                             json=pop_request(VARIANTS[variant](token), other, "alice@example.com"))
    assert resp.status_code == 401, resp.text
    assert resp.json()["code"] == 401


async def test_malleated_token_with_the_same_key_is_a_retry(client: Any, stack: CAStack) -> None:
    """Retry semantics survive normalisation: an equivalent token + the same key gets the
    certificate already logged, and nothing new is appended."""
    token = stack.issuers["email"].token(jti=None)
    key = ec.generate_private_key(ec.SECP256R1())
    first = await client.post("/api/v2/signingCert",
                              json=pop_request(token, key, "alice@example.com"))
    size = (await stack.engine.tree())[0]
    again = await client.post("/api/v2/signingCert",
                              json=pop_request(_high_s(token) + "\n", key, "alice@example.com"))
    assert again.status_code == 200, again.text
    assert _chain(again)[0].serial_number == _chain(first)[0].serial_number
    assert (await stack.engine.tree())[0] == size


async def test_tokens_sharing_a_jti_are_one_token(client: Any, stack: CAStack) -> None:
    """Two JWTs of one issuer with the same jti name one token (RFC 7519 §4.1.7)."""
    email = stack.issuers["email"]
    first = email.token(jti="j-1", iat=int(time.time()) - 7)
    second = email.token(jti="j-1")
    assert first != second
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ok = await client.post("/api/v2/signingCert",
                           json=pop_request(first, key, "alice@example.com"))
    assert ok.status_code == 200
    resp = await client.post("/api/v2/signingCert",
                             json=pop_request(second, other, "alice@example.com"))
    assert resp.status_code == 401
    assert "already used" in resp.json()["message"]


async def test_bearer_header_variant_is_the_same_token(client: Any, stack: CAStack) -> None:
    """The CSR dialect's bearer header goes through the same normalisation."""
    token = stack.issuers["email"].token()
    _, csr = make_csr()
    ok = await post_csr(client, csr, token)
    assert ok.status_code == 200, ok.text
    _, csr2 = make_csr()
    resp = await client.post(
        "/api/v2/signingCert",
        json={"certificateSigningRequest": base64.b64encode(csr2).decode()},
        headers={"Authorization": f"Bearer {_high_s(token)}"},
    )
    assert resp.status_code == 401, resp.text


async def test_replay_guard_can_be_switched_off(tmp_path: Path) -> None:
    stack = build_stack(tmp_path / "ca", replay=False)
    token = stack.issuers["email"].token()
    transport = httpx.ASGITransport(app=_app(stack))
    async with httpx.AsyncClient(transport=transport, base_url="http://ca.test") as c:
        for _ in range(2):
            key = ec.generate_private_key(ec.SECP256R1())
            resp = await c.post("/api/v2/signingCert",
                                json=pop_request(token, key, "alice@example.com"))
            assert resp.status_code == 200


async def test_legacy_v1_and_read_endpoints(client: Any, stack: CAStack) -> None:
    token = stack.issuers["email"].token()
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    proof = key.sign(b"alice@example.com", ec.ECDSA(hashes.SHA256()))
    resp = await client.post(
        "/api/v1/signingCert",
        json={"publicKey": {"algorithm": "ecdsa", "content": base64.b64encode(der).decode()},
              "signedEmailAddress": base64.b64encode(proof).decode()},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["content-type"].startswith("application/pem-certificate-chain")
    certs = x509.load_pem_x509_certificates(resp.content)
    assert len(certs) == 3 and certs[0].public_key() == key.public_key()

    _, csr = make_csr()
    resp = await client.post("/api/v1/signingCert",
                             json={"certificateSigningRequest": base64.b64encode(csr).decode()},
                             headers={"Authorization": f"Bearer {stack.issuers['email'].token()}"})
    assert resp.status_code == 201

    bundle = (await client.get("/api/v2/trustBundle")).json()
    chain = [x509.load_pem_x509_certificate(p.encode())
             for p in bundle["chains"][0]["certificates"]]
    assert chain == list(stack.ca.material.chain)
    root_cert = await client.get("/api/v1/rootCert")
    assert x509.load_pem_x509_certificates(root_cert.content) == chain
    config = (await client.get("/api/v2/configuration")).json()
    assert {"issuerUrl": "https://issuer.test", "audience": "sigstore",
            "challengeClaim": "email", "issuerType": "email"} in config["issuers"]


async def test_signing_endpoints_spend_a_per_client_budget(stack: CAStack) -> None:
    """Anonymous signing requests cost CPU before any token is believed (#13 defect 7): once a
    client's budget is spent it gets 429 + Retry-After, while another client is still served."""
    from keyless.http.budget import ClientBudget
    from keyless.services.ca.routes import SIGNING_COST

    budget = ClientBudget(burst=2 * SIGNING_COST, rate=0.001)
    app = Starlette(routes=ca_routes(stack.ca, budget), exception_handlers=EXCEPTION_HANDLERS)
    _, csr = make_csr()
    body = {"certificateSigningRequest": base64.b64encode(csr).decode()}

    async def post(address: str, path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(address, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://ca.test") as c:
            return await c.post(path, json=body)

    answers = [await post("192.0.2.1", "/api/v2/signingCert") for _ in range(2)]
    assert [r.status_code for r in answers] == [401, 401]  # admitted: refused for the token
    spent = await post("192.0.2.1", "/api/v1/signingCert")
    assert spent.status_code == 429
    assert "budget" in spent.json()["message"]
    assert int(spent.headers["Retry-After"]) >= 1
    assert (await post("192.0.2.2", "/api/v2/signingCert")).status_code == 401
