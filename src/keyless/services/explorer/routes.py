"""HTTP face of the explorer: server-rendered HTML, no JavaScript, no external assets.

Safe by construction: every page comes from an autoescaped Jinja2 template (a query is only
ever shown escaped), every answer carries a Content-Security-Policy that allows nothing but this
origin's stylesheet (no script at all), and queries are bounded (:mod:`.query`). Bad input is
a 400 page naming the problem, an unknown entry a 404 page.

=========================================  ===============================================
``GET /``                                  search box; ``?q=…&page=N`` a result page
``GET /explorer/entry/{log}/{index}``      one entry, its certificate and verified proof
``GET /explorer/entry/{log}/{index}/download``  bundle fragment (or a CT certificate, PEM)
``GET /explorer/status``                   each log's tree, the CA and TSA chains
``GET /explorer/static/style.css``         the one stylesheet
=========================================  ===============================================
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keyless.errors import InvalidInput, NotFound
from keyless.http.budget import ClientBudget
from keyless.http.errors import TooManyRequests
from keyless.http.requests import path_int, query_int
from keyless.services.explorer.service import ExplorerService

#: No script, no frames, no foreign anything: only this origin's stylesheet and inline images.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
HTML = "text/html; charset=utf-8"


def environment() -> Environment:
    """The templates, autoescaped whatever their names."""
    return Environment(
        loader=PackageLoader("keyless.services.explorer", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
    )


def _single(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise InvalidInput(f"query parameter {name} is repeated; give it once")
    return values[0] if values else None


#: budget units of an entry page (reads, proof, certificate checks)
ENTRY_COST = 5.0


def routes(service: ExplorerService, budget: ClientBudget | None = None) -> list[Route]:
    """The explorer's routes at the port root (its pages live under ``/explorer/``); searches
    and entry pages spend a per-client budget (:mod:`keyless.http.budget`), like the logs'
    own search API."""
    budget = budget or ClientBudget()
    env = environment()
    root = urlsplit(service.public_url).path.rstrip("/")
    stylesheet = resources.files("keyless.services.explorer").joinpath(
        "static/style.css").read_bytes()

    def page(template: str, code: int = 200, **values: Any) -> Response:
        body = env.get_template(template).render(root=root, public_url=service.public_url, **values)
        return Response(body, status_code=code, media_type=HTML, headers=SECURITY_HEADERS)

    def failure(exc: InvalidInput | NotFound | TooManyRequests, q: str = "") -> Response:
        if isinstance(exc, TooManyRequests):
            answer = page("error.html", 429, message=str(exc), status=429, q="")
            answer.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
            return answer
        code = 404 if isinstance(exc, NotFound) else 400
        return page("error.html", code, message=str(exc), status=code, q=q)

    async def home(request: Request) -> Response:
        q = ""
        try:
            q = _single(request, "q") or ""
            page_number = query_int(request, "page", 1, minimum=1)
            assert page_number is not None
            if not q:
                return page("home.html", q="")
            client = budget.admit(request)
            results = await service.search(q, page_number)
            budget.charge(client, results.cost)
        except (InvalidInput, NotFound, TooManyRequests) as exc:
            return failure(exc, q if len(q) <= 512 else "")
        return page("results.html", q=results.query.text, results=results)

    async def entry(request: Request) -> Response:
        try:
            index = path_int(request.path_params["index"], "log index")
            budget.charge(budget.admit(request), ENTRY_COST)
            view = await service.entry(request.path_params["log"], index)
        except (InvalidInput, NotFound, TooManyRequests) as exc:
            return failure(exc)
        return page("entry.html", q="", entry=view)

    async def download(request: Request) -> Response:
        try:
            index = path_int(request.path_params["index"], "log index")
            budget.charge(budget.admit(request), ENTRY_COST)
            item = await service.download(request.path_params["log"], index)
        except (InvalidInput, NotFound, TooManyRequests) as exc:
            return failure(exc)
        headers = {**SECURITY_HEADERS,
                   "Content-Disposition": f'attachment; filename="{item.filename}"'}
        return Response(item.content, media_type=item.media_type, headers=headers)

    async def status(_request: Request) -> Response:
        return page("status.html", q="", status=await service.status())

    async def style(_request: Request) -> Response:
        return Response(stylesheet, media_type="text/css; charset=utf-8",
                        headers={**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"})

    return [
        Route("/", home, methods=["GET"]),
        Route("/explorer/status", status, methods=["GET"]),
        Route("/explorer/entry/{log}/{index}", entry, methods=["GET"]),
        Route("/explorer/entry/{log}/{index}/download", download, methods=["GET"]),
        Route("/explorer/static/style.css", style, methods=["GET"]),
    ]
