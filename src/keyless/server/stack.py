"""What the composition root assembles: a :class:`Stack` of :class:`Component` services.

Built by :func:`keyless.server.init.build_stack` (one step per service in
:mod:`keyless.server.wiring`) and served by :func:`keyless.server.app.create_app`. Its own module so
that the app factory, the initialisation and the wiring all point down to it, in no cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from starlette.routing import BaseRoute

from keyless.server.config import Settings
from keyless.server.trust import TrustMaterial


@dataclass
class Component:
    """One service as the stack sees it: routes under a base path plus its lifecycle."""

    name: str
    prefix: str
    routes: Sequence[BaseRoute]
    start: Callable[[], Awaitable[None]] | None = None
    close: Callable[[], Awaitable[None]] | None = None
    #: the service's public base URL, for the startup banner
    url: str = ""


@dataclass
class Stack:
    """Everything :func:`keyless.server.app.create_app` serves, built by
    :func:`keyless.server.init.build_stack`."""

    settings: Settings
    components: list[Component]
    trust: TrustMaterial
    #: runs once services have started (e.g. publishing the TUF targets)
    after_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: runs last at shutdown, in reverse order (storage, data-directory lock)
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: extra gauges for /metrics: name → (help, reader)
    gauges: dict[str, tuple[str, Callable[[], dict[str, float]]]] = field(default_factory=dict)
    #: things the operator should know at start (printed with the banner)
    warnings: list[str] = field(default_factory=list)


StackBuilder = Callable[[Settings], Awaitable[Stack]]

logger = logging.getLogger(__name__)


async def close_stack(stack: Stack, started: Sequence[Component]) -> None:
    """Close the ``started`` components in reverse order, then run the stack's cleanups (each
    failure is logged and the rest still run)."""
    for component in reversed(started):
        if component.close is not None:
            try:
                await component.close()
            except Exception:
                logger.exception("closing %s failed", component.name)
    for cleanup in reversed(stack.cleanups):
        try:
            await cleanup()
        except Exception:
            logger.exception("cleanup failed")
