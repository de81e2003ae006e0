"""The TUF repository service: a :class:`TufRepository` whose metadata is kept from expiring.

Its HTTP routes are :func:`keyless.services.tuf.routes.routes` (mounted at ``P/tuf``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from keyless.services.tuf.repository import TufRepository

logger = logging.getLogger(__name__)


class TufService:
    """Serves a :class:`TufRepository` and keeps its metadata from expiring."""

    def __init__(self, repository: TufRepository, *, refresh_interval: float = 3600.0) -> None:
        self.repository = repository
        self._interval = refresh_interval
        self._task: asyncio.Task[None] | None = None

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
