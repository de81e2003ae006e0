"""HTTP routes of the CA, relative to its base URL (the root of the port, interop.md §5.10).

Fulcio's grpc-gateway JSON API (protocols.md §1.1): ``POST /api/v2/signingCert`` in both request
dialects (CSR + ``Authorization: Bearer`` from sigstore-python; ``publicKeyRequest`` +
``credentials.oidcIdentityToken`` from sigstore-js; the body token wins when non-empty), answered
with **200** and ``signedCertificateEmbeddedSct``; ``GET /api/v2/trustBundle``,
``GET /api/v2/configuration``; the legacy v1 API still used by cosign 2.x
(``POST /api/v1/signingCert`` → **201** PEM chain, ``GET /api/v1/rootCert``).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from keyless.errors import InvalidInput, Unauthenticated
from keyless.http.budget import ClientBudget
from keyless.http.endpoints import Answer, AnswerEndpoint
from keyless.http.requests import read_json_object
from keyless.identity import normalize_token
from keyless.services.ca.pop import parse_csr, parse_public_key
from keyless.services.ca.service import CAService, IssuedCertificate

#: A signing request is a key or CSR plus a token: a few KiB.
MAX_SIGNING_BODY = 64 * 1024
PEM_CHAIN = "application/pem-certificate-chain"
#: Budget units (~ms of CPU) of one signing request: token and proof checks, a certificate and
#: a precertificate signed, a CT log entry (server/budget.py).
SIGNING_COST = 3.0


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must be a non-empty base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what} is not valid base64") from exc


def _token(request: Request, body: dict[str, Any]) -> str:
    """The identity token: ``credentials.oidcIdentityToken`` if non-empty, else the bearer.

    Normalised here, once (:func:`keyless.identity.normalize_token`: surrounding whitespace
    removed, strict compact JWS required), so that every later step sees the same string.
    """
    credentials = body.get("credentials")
    if credentials is not None and not isinstance(credentials, dict):
        raise InvalidInput("'credentials' must be an object")
    token = (credentials or {}).get("oidcIdentityToken")
    if token is not None and not isinstance(token, str):
        raise InvalidInput("'credentials.oidcIdentityToken' must be a string")
    if token:
        return normalize_token(token)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return normalize_token(value)
    raise Unauthenticated(
        "no identity token: send credentials.oidcIdentityToken or 'Authorization: Bearer <jwt>'"
    )


def routes(service: CAService, budget: ClientBudget | None = None) -> list[Route]:
    """The CA's routes over ``service``, relative to the port root; the signing endpoints spend
    a per-client ``budget`` (default :class:`ClientBudget`'s; 429 when spent)."""
    budget = budget or ClientBudget()

    async def signing_cert_v2(request: Request) -> Answer:
        budget.admit(request, SIGNING_COST)
        return await _signing_cert_v2(service, request)

    async def signing_cert_v1(request: Request) -> Response:
        budget.admit(request, SIGNING_COST)
        return await _signing_cert_v1(service, request)

    async def trust_bundle(_request: Request) -> Response:
        return JSONResponse({"chains": [{"certificates": service.chain_pem()}]})

    async def configuration(_request: Request) -> Response:
        return JSONResponse({"issuers": service.issuers_api()})

    async def root_cert(_request: Request) -> Response:
        return Response("".join(service.chain_pem()), media_type=PEM_CHAIN)

    return [
        # the hot write: a plain ASGI endpoint (keyless.http.endpoints), same answers
        Route("/api/v2/signingCert", AnswerEndpoint(signing_cert_v2), methods=["POST"]),
        Route("/api/v2/trustBundle", trust_bundle, methods=["GET"]),
        Route("/api/v2/configuration", configuration, methods=["GET"]),
        Route("/api/v1/signingCert", signing_cert_v1, methods=["POST"]),
        Route("/api/v1/rootCert", root_cert, methods=["GET"]),
    ]


async def _signing_cert_v2(service: CAService, request: Request) -> Answer:
    body = await read_json_object(request, MAX_SIGNING_BODY)
    csr_field = body.get("certificateSigningRequest")
    key_request = body.get("publicKeyRequest")
    if csr_field and key_request:
        raise InvalidInput("send certificateSigningRequest or publicKeyRequest, not both")
    if csr_field:
        csr = parse_csr(_b64(csr_field, "certificateSigningRequest"))
        issued = await service.issue_for_csr(_token(request, body), csr)
    elif key_request:
        if not isinstance(key_request, dict):
            raise InvalidInput("'publicKeyRequest' must be an object")
        public_key = key_request.get("publicKey")
        if not isinstance(public_key, dict) or not isinstance(public_key.get("content"), str):
            raise InvalidInput("'publicKeyRequest.publicKey.content' (PEM or DER) is required")
        key = parse_public_key(public_key["content"])
        proof = _b64(
            key_request.get("proofOfPossession"), "publicKeyRequest.proofOfPossession"
        )
        issued = await service.issue_for_key(_token(request, body), key, proof)
    else:
        raise InvalidInput(
            "the request needs certificateSigningRequest or publicKeyRequest"
        )
    chain = {"signedCertificateEmbeddedSct": {"chain": {"certificates": issued.pem_chain()}}}
    # rendered as Starlette's JSONResponse renders (what this endpoint answered before)
    answer = json.dumps(chain, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return 200, (), answer.encode()


async def _signing_cert_v1(service: CAService, request: Request) -> Response:
    """Legacy Fulcio v1 (``fulcio_legacy.proto``): 201 with the PEM chain, leaf first."""
    body = await read_json_object(request, MAX_SIGNING_BODY)
    issued: IssuedCertificate
    if body.get("certificateSigningRequest"):
        csr = parse_csr(_b64(body["certificateSigningRequest"], "certificateSigningRequest"))
        issued = await service.issue_for_csr(_token(request, body), csr)
    else:
        public_key = body.get("publicKey")
        if not isinstance(public_key, dict):
            raise InvalidInput("the request needs publicKey or certificateSigningRequest")
        key = parse_public_key(_b64(public_key.get("content"), "publicKey.content"))
        proof = _b64(body.get("signedEmailAddress"), "signedEmailAddress")
        issued = await service.issue_for_key(_token(request, body), key, proof)
    return Response("".join(issued.pem_chain()), status_code=201, media_type=PEM_CHAIN)
