"""HTTP routes of the CT log, relative to its base URL (internal-apis.md: ``P/ctlog``).

RFC 6962 §4 JSON API under ``/ct/v1/…`` and the C2SP static-ct-api read path
(``/checkpoint``, ``/tile/<L>/<N>[.p/<W>]``, ``/tile/data/<N>[.p/<W>]``, ``/issuer/<hex>``).
Errors are keyless exceptions rendered by ``keyless.http.errors.EXCEPTION_HANDLERS``.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography import x509
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from keyless.errors import InvalidInput, NotFound
from keyless.http.budget import ClientBudget
from keyless.http.requests import parse_json_object, query_int, read_body
from keyless.http.tile_routes import STATIC_CT, tile_routes
from keyless.services.ctlog.service import MAX_CHAIN, CTLogService

#: Largest add-chain body (10 certificates of a few KiB, base64).
MAX_ADD_CHAIN_BODY = 256 * 1024
_FP = re.compile(r"[0-9a-f]{64}")
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


def _int_param(request: Request, name: str) -> int:
    value = query_int(request, name, required=True)
    assert value is not None
    return value


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what} is not valid base64") from exc


def _check_certificate(der: bytes, what: str) -> None:
    """Parse a certificate *and its extensions* now: ``cryptography`` decodes extensions lazily,
    so a malformed one (RFC 5280 §4.2) would otherwise surface as a ValueError deep inside the
    service, after the request had already been judged well-formed."""
    try:
        x509.load_der_x509_certificate(der).extensions  # noqa: B018 - parse for errors
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise InvalidInput(
            f"{what} is not a DER X.509 certificate with well-formed extensions: {exc}"
        ) from exc


def routes(service: CTLogService, budget: ClientBudget | None = None) -> list[BaseRoute]:
    """The CT log's routes relative to its base URL; submissions spend a per-client budget
    (``budget``, default :class:`keyless.http.budget.ClientBudget`'s; 429 when spent)."""
    return _Handlers(service, budget or ClientBudget()).routes()


class _Handlers:
    """The request handlers over one :class:`CTLogService` and its budget."""

    def __init__(self, service: CTLogService, budget: ClientBudget) -> None:
        self.service = service
        self.budget = budget

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/ct/v1/add-chain", self.add_chain, methods=["POST"]),
            Route("/ct/v1/add-pre-chain", self.add_pre_chain, methods=["POST"]),
            Route("/ct/v1/get-sth", self.get_sth, methods=["GET"]),
            Route("/ct/v1/get-sth-consistency", self.get_sth_consistency, methods=["GET"]),
            Route("/ct/v1/get-proof-by-hash", self.get_proof_by_hash, methods=["GET"]),
            Route("/ct/v1/get-entries", self.get_entries, methods=["GET"]),
            Route("/ct/v1/get-roots", self.get_roots, methods=["GET"]),
            *tile_routes(
                STATIC_CT,
                checkpoint=self.service.checkpoint,
                tile=self.service.tile,
                bundle=self.service.data_tile,
            ),
            Route("/issuer/{fingerprint}", self.issuer, methods=["GET"]),
        ]

    async def _chain(self, request: Request) -> list[bytes]:
        client = self.budget.admit(request)
        raw = await read_body(request, MAX_ADD_CHAIN_BODY)
        self.budget.settle_body(request, client, len(raw))
        body = parse_json_object(raw)
        chain = body.get("chain")
        if not isinstance(chain, list):
            raise InvalidInput("'chain' must be a list of base64 DER certificates")
        ders = [_b64(c, f"chain[{i}]") for i, c in enumerate(chain)]
        if len(ders) <= MAX_CHAIN:  # longer chains are refused by the service, unparsed
            for i, der in enumerate(ders):
                _check_certificate(der, f"chain[{i}]")
        return ders

    async def add_chain(self, request: Request) -> Response:
        sct = await self.service.add_chain(await self._chain(request), precert=False)
        return JSONResponse(sct.to_add_chain_response())

    async def add_pre_chain(self, request: Request) -> Response:
        sct = await self.service.add_chain(await self._chain(request), precert=True)
        return JSONResponse(sct.to_add_chain_response())

    async def get_sth(self, request: Request) -> Response:
        sth = await self.service.signed_tree_head()
        return JSONResponse(sth.to_json())

    async def get_sth_consistency(self, request: Request) -> Response:
        proof = await self.service.consistency(
            _int_param(request, "first"), _int_param(request, "second")
        )
        return JSONResponse({"consistency": [base64.b64encode(h).decode() for h in proof]})

    async def get_proof_by_hash(self, request: Request) -> Response:
        leaf_hash = _b64(request.query_params.get("hash"), "query parameter 'hash'")
        index, path = await self.service.proof_by_hash(leaf_hash, _int_param(request, "tree_size"))
        return JSONResponse(
            {"leaf_index": index, "audit_path": [base64.b64encode(h).decode() for h in path]}
        )

    async def get_entries(self, request: Request) -> Response:
        entries = await self.service.entries(
            _int_param(request, "start"), _int_param(request, "end")
        )
        return JSONResponse(
            {
                "entries": [
                    {
                        "leaf_input": base64.b64encode(leaf).decode(),
                        "extra_data": base64.b64encode(extra).decode(),
                    }
                    for leaf, extra in entries
                ]
            }
        )

    async def get_roots(self, request: Request) -> Response:
        from cryptography.hazmat.primitives.serialization import Encoding

        return JSONResponse(
            {
                "certificates": [
                    base64.b64encode(r.public_bytes(Encoding.DER)).decode()
                    for r in self.service.roots
                ]
            }
        )

    async def issuer(self, request: Request) -> Response:
        fp = request.path_params["fingerprint"]
        if not _FP.fullmatch(fp):
            raise NotFound("issuer fingerprint must be 64 lowercase hex digits")
        der = await self.service.issuer(bytes.fromhex(fp))
        return Response(der, media_type="application/pkix-cert", headers=_IMMUTABLE)
