"""HTTP routes of the TUF repository, relative to its base URL ``P/tuf`` (protocols.md §10).

Paths are those python-tuf's ngclient and sigstore-js's ``@sigstore/tuf`` request: the metadata
base is the repository URL, the target base is ``URL/targets/``. A missing ``{N}.root.json``
answers 404, which is how clients learn they hold the newest root.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from keyless.errors import NotFound
from keyless.services.tuf.repository import TufRepository

logger = logging.getLogger(__name__)

_VERSIONED = re.compile(r"^(?:(\d{1,12})\.)?(root|targets|snapshot|timestamp)\.json$")
_TARGET = re.compile(r"^([0-9a-f]{64})\.([A-Za-z0-9_.-]{1,100})$")


class TufService:
    """Serves a :class:`TufRepository` and keeps its metadata from expiring."""

    def __init__(self, repository: TufRepository, *, refresh_interval: float = 3600.0) -> None:
        self.repository = repository
        self._interval = refresh_interval
        self._task: asyncio.Task[None] | None = None

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/targets/{name}", self._target, methods=["GET", "HEAD"]),
            Route("/{name}", self._metadata, methods=["GET", "HEAD"]),
        ]

    async def _metadata(self, request: Request) -> Response:
        match = _VERSIONED.match(request.path_params["name"])
        if not match:
            raise NotFound(f"no TUF metadata named {request.path_params['name']!r}")
        version = int(match.group(1)) if match.group(1) else None
        role = match.group(2)
        if role == "root":
            data = await self.repository.root_json(version)
        else:
            data = await self.repository.metadata(role, version)
        return Response(data, media_type="application/json")

    async def _target(self, request: Request) -> Response:
        match = _TARGET.match(request.path_params["name"])
        if not match:
            raise NotFound(f"no TUF target named {request.path_params['name']!r}")
        data = await self.repository.target(match.group(1), match.group(2))
        return Response(data, media_type="application/octet-stream")

    async def start(self) -> None:
        """Start the expiry-refresh loop (the initial publish is done by the caller)."""
        self._task = asyncio.create_task(self._refresh_loop(), name="tuf-refresh")

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.repository.refresh()
            except Exception:
                logger.exception("TUF metadata refresh failed; retrying in %.0f s", self._interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
