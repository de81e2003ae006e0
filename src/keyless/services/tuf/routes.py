"""HTTP routes of the TUF repository, relative to its base URL ``P/tuf`` (protocols.md §10).

Paths are those python-tuf's ngclient and sigstore-js's ``@sigstore/tuf`` request: the metadata
base is the repository URL, the target base is ``URL/targets/``. A missing ``{N}.root.json``
answers 404, which is how clients learn they hold the newest root.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keyless.errors import NotFound
from keyless.services.tuf.service import TufService

_VERSIONED = re.compile(r"^(?:(\d{1,12})\.)?(root|targets|snapshot|timestamp)\.json$")
_TARGET = re.compile(r"^([0-9a-f]{64})\.([A-Za-z0-9_.-]{1,100})$")


def routes(service: TufService) -> list[Route]:
    """``/{N}.root.json``, ``/{role}.json`` and ``/targets/{hash}.{name}`` over ``service``."""
    repository = service.repository

    async def metadata(request: Request) -> Response:
        match = _VERSIONED.match(request.path_params["name"])
        if not match:
            raise NotFound(f"no TUF metadata named {request.path_params['name']!r}")
        version = int(match.group(1)) if match.group(1) else None
        role = match.group(2)
        if role == "root":
            data = await repository.root_json(version)
        else:
            data = await repository.metadata(role, version)
        return Response(data, media_type="application/json")

    async def target(request: Request) -> Response:
        match = _TARGET.match(request.path_params["name"])
        if not match:
            raise NotFound(f"no TUF target named {request.path_params['name']!r}")
        data = await repository.target(match.group(1), match.group(2))
        return Response(data, media_type="application/octet-stream")

    return [
        Route("/targets/{name}", target, methods=["GET", "HEAD"]),
        Route("/{name}", metadata, methods=["GET", "HEAD"]),
    ]
