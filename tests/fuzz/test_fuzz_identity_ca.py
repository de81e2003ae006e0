"""Identity tokens (JWT, JWKS) and the CA's proof of possession (CSR, public key, challenge
signature) fed mutations of valid inputs.

* tokens: byte edits of a valid token; its header and claims edited as JSON (re-signed with the
  issuer's key, so the claim checks behind the signature are reached too); hostile JWKS and
  discovery documents. Only Unauthenticated / Unavailable.
* CSRs and public keys (PEM and DER, every allowed key type): only ProofError.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from typing import Any

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fuzz_support import FUZZ, mutated_bytes, mutated_json, only, value_of
from hypothesis import given
from hypothesis import strategies as st

from keyless.errors import Unauthenticated, Unavailable
from keyless.identity import IdentityVerifier, IssuerConfig
from keyless.identity.principals import principal_for
from keyless.services.ca import pop

ISSUER = "https://issuer.test"
NOW = 1_800_000_000.0
_KEY = ec.generate_private_key(ec.SECP256R1())
_JWK = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(_KEY.public_key())), "kid": "k1"}
_CLAIMS = {"iss": ISSUER, "aud": "sigstore", "sub": "user-1", "email": "alice@example.com",
           "email_verified": True, "iat": int(NOW) - 10, "exp": int(NOW) + 300}
_HEADER = {"alg": "ES256", "kid": "k1", "typ": "JWT"}
_CONFIGS = [IssuerConfig(ISSUER), IssuerConfig(ISSUER, type="uri", subject_domain="https://x.test"),
            IssuerConfig(ISSUER, type="username", subject_domain="x.test"),
            IssuerConfig(ISSUER, type="spiffe", spiffe_trust_domain="x.test"),
            IssuerConfig(ISSUER, type="github-workflow")]


def _verifier(config: IssuerConfig, discovery: Any = None, jwks: Any = None) -> IdentityVerifier:
    def route(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url == ISSUER + "/.well-known/openid-configuration":
            doc = discovery if discovery is not None else {"issuer": ISSUER,
                                                           "jwks_uri": ISSUER + "/keys"}
            return httpx.Response(200, content=json.dumps(doc).encode())
        if url == ISSUER + "/keys":
            return httpx.Response(200, content=json.dumps(
                jwks if jwks is not None else {"keys": [_JWK]}).encode())
        return httpx.Response(404)

    return IdentityVerifier([config], httpx.AsyncClient(transport=httpx.MockTransport(route)),
                            lambda: NOW)


def _check(token: str, config: IssuerConfig = _CONFIGS[0], **documents: Any) -> None:
    async def run() -> None:
        identity = await _verifier(config, **documents).verify(token)
        principal_for(identity.claims, config)

    with only(Unauthenticated, Unavailable):
        asyncio.run(run())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(header: Any, claims: Any) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = jwt.algorithms.ECAlgorithm(hashes.SHA256).sign(signing_input.encode(), _KEY)
    return f"{signing_input}.{_b64(signature)}"


def test_seed_token_is_accepted() -> None:
    async def run() -> None:
        await _verifier(_CONFIGS[0]).verify(_token(_HEADER, _CLAIMS))

    asyncio.run(run())


@FUZZ
@given(data=mutated_bytes([_token(_HEADER, _CLAIMS).encode()]))
def test_token_bytes_raise_only_unauthenticated(data: bytes) -> None:
    _check(data.decode("utf-8", "surrogateescape"))


@FUZZ
@given(header=mutated_json([_HEADER]), claims=mutated_json([_CLAIMS]), which=st.integers(0, 4),
       edit=st.sampled_from(["header", "claims", "both"]))
def test_resigned_token_edits_raise_only_unauthenticated(header: Any, claims: Any, which: int,
                                                         edit: str) -> None:
    header = value_of(header) if edit != "claims" else _HEADER
    claims = value_of(claims) if edit != "header" else _CLAIMS
    try:
        token = _token(header, claims)
    except (ValueError, TypeError):
        return  # not JSON-encodable (no such token on the wire)
    _check(token, _CONFIGS[which])


@FUZZ
@given(discovery=mutated_json([{"issuer": ISSUER, "jwks_uri": ISSUER + "/keys"}]),
       jwks=mutated_json([{"keys": [_JWK]}]))
def test_hostile_discovery_and_jwks_raise_only_unauthenticated(discovery: Any, jwks: Any) -> None:
    _check(_token(_HEADER, _CLAIMS), discovery=value_of(discovery), jwks=value_of(jwks))


# --------------------------------------------------------------------------------------------
# The CA's proof of possession.

@functools.cache
def _keys() -> list[Any]:
    return [ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1()),
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            ed25519.Ed25519PrivateKey.generate()]


@functools.cache
def _csrs() -> list[bytes]:
    out = []
    for key in _keys():
        algorithm = (None if isinstance(key, ed25519.Ed25519PrivateKey)
                     else pop.default_hash(key.public_key()))
        csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .sign(key, algorithm))
        out += [csr.public_bytes(serialization.Encoding.PEM),
                csr.public_bytes(serialization.Encoding.DER)]
    return out


@functools.cache
def _public_keys() -> list[bytes]:
    out = []
    for key in _keys():
        public = key.public_key()
        out += [public.public_bytes(serialization.Encoding.PEM,
                                    serialization.PublicFormat.SubjectPublicKeyInfo),
                public.public_bytes(serialization.Encoding.DER,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)]
    return out


def test_seed_csrs_verify() -> None:
    for data in _csrs():
        pop.verify_csr(pop.parse_csr(data))


@FUZZ
@given(data=st.deferred(lambda: mutated_bytes(_csrs())))
def test_csrs_raise_only_proof_error(data: bytes) -> None:
    with only(pop.ProofError):
        pop.verify_csr(pop.parse_csr(data))


@FUZZ
@given(data=st.deferred(lambda: mutated_bytes(_public_keys())), signature=st.binary(max_size=80),
       as_text=st.booleans())
def test_public_keys_and_challenges_raise_only_proof_error(data: bytes, signature: bytes,
                                                           as_text: bool) -> None:
    with only(pop.ProofError):
        key = pop.parse_public_key(data.decode("utf-8", "surrogateescape") if as_text else data)
        pop.verify_challenge(key, signature, "user-1")


# --------------------------------------------------------------------------------------------
# Regressions found by the properties above.


def test_token_with_a_lone_surrogate_is_unauthenticated() -> None:
    """pyjwt raised UnicodeEncodeError on a str token holding a lone surrogate."""
    token = "\udce5" + _token(_HEADER, _CLAIMS)[1:]

    async def run() -> None:
        await _verifier(_CONFIGS[0]).verify(token)

    try:
        asyncio.run(run())
    except Unauthenticated:
        pass
    else:
        raise AssertionError("accepted")


def test_public_key_text_with_a_lone_surrogate_is_a_proof_error() -> None:
    try:
        pop.parse_public_key("-----BEGIN PUBLIC KEY-----\n\udc86\n-----END PUBLIC KEY-----\n")
    except pop.ProofError:
        pass
    else:
        raise AssertionError("accepted")


def test_discovery_issuer_mismatch_is_quoted_shortened() -> None:
    async def run() -> None:
        await _verifier(_CONFIGS[0], discovery={"issuer": "A" * 70_000}).verify(
            _token(_HEADER, _CLAIMS))

    try:
        asyncio.run(run())
    except Unauthenticated as exc:
        assert len(str(exc)) < 500, str(exc)[:100]
    else:
        raise AssertionError("accepted")


def test_csr_with_an_unknown_version_is_a_proof_error() -> None:
    """cryptography raises InvalidVersion (not a ValueError) for a PKCS#10 version other than 0."""
    der = _csrs()[1]
    hostile = der.replace(b"\x02\x01\x00", b"\x02\x01\x01", 1)
    try:
        pop.verify_csr(pop.parse_csr(hostile))
    except pop.ProofError:
        pass
    else:
        raise AssertionError("accepted")


def test_hostile_algorithm_is_quoted_shortened() -> None:
    token = _token({**_HEADER, "alg": ["A" * 10_000]}, _CLAIMS)

    async def run() -> None:
        await _verifier(_CONFIGS[0]).verify(token)

    try:
        asyncio.run(run())
    except Unauthenticated as exc:
        assert len(str(exc)) < 500, str(exc)[:100]
    else:
        raise AssertionError("accepted")
