"""``create_app``: every keyless service composed into one ASGI application on one port.

The URL layout is that of docs/internal-apis.md (contracts.md §2): each service hands over its
routes *relative to its base URL* and is mounted under that base (the CA and Rekor v1 at the port
root because sigstore-python drops CA path prefixes, interop.md §5 item 10). The stack adds:

* ``GET /healthz`` — 200 once every service has started and the trust material is published,
  503 before that and while draining;
* ``GET /metrics`` — Prometheus text (:mod:`keyless.http.metrics`);
* ``GET /client-trust-config.json`` — the ClientTrustConfig of this instance
  (:mod:`keyless.server.trust`), also written to ``DIR/client-trust-config.json``.

Services are built inside the application's lifespan (they need the event loop for their storage
connections), then mounted; uvicorn only binds its socket after the lifespan has started, so a
client that can connect finds every route in place. Shutdown stops taking new connections
(uvicorn), waits for in-flight writes to finish (:meth:`Metrics.drained`), then closes the
services in reverse order so that every acknowledged entry has been integrated (the log engine's
``close()`` flushes its batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from keyless.http.admission import Admission
from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.http.front import FrontMiddleware
from keyless.http.metrics import Metrics
from keyless.localfiles import write_file_atomically
from keyless.server.config import Settings
from keyless.server.routing import IndexedRouter
from keyless.server.stack import Component, Stack, StackBuilder, close_stack
from keyless.server.trust import CLIENT_TRUST_CONFIG_MEDIA_TYPE, TrustMaterial

logger = logging.getLogger(__name__)


def prefixed(routes: Sequence[BaseRoute], prefix: str) -> list[BaseRoute]:
    """``routes`` rebased under ``prefix`` (a route ``/`` becomes exactly ``prefix``)."""
    if not prefix:
        return list(routes)
    out: list[BaseRoute] = []
    for route in routes:
        if isinstance(route, Route):
            path = prefix if route.path in ("", "/") else prefix + route.path
            methods = sorted(route.methods - {"HEAD"}) if route.methods else None
            out.append(Route(path, route.endpoint, methods=methods, name=route.name))
        elif isinstance(route, Mount):
            out.append(Mount(prefix + route.path, app=route.app, name=route.name))
        else:
            raise TypeError(f"cannot mount route {route!r} under {prefix}")
    return out


class StackState:
    """The mutable state the stack's own endpoints read."""

    def __init__(self) -> None:
        self.ready = False
        self.draining = False
        self.stack: Stack | None = None
        self.client_trust_config: bytes = b""


def _render_trust_config(trust: TrustMaterial) -> bytes:
    return json.dumps(trust.client_trust_config(), indent=2).encode() + b"\n"


def create_app(
    settings: Settings,
    *,
    builder: StackBuilder | None = None,
    metrics: Metrics | None = None,
) -> Starlette:
    """The ASGI app of a whole stack; ``builder`` (default: first-start/reuse initialisation of
    :mod:`keyless.server.init`) makes the services when the app starts."""
    if builder is None:
        from keyless.server.init import build_stack

        builder = build_stack
    build = builder
    state = StackState()
    counters = metrics or Metrics()

    async def healthz(_request: Request) -> Response:
        services = [c.name for c in state.stack.components] if state.stack else []
        if state.ready and not state.draining:
            return JSONResponse({"status": "ok", "services": services})
        status = "draining" if state.draining else "starting"
        return JSONResponse({"status": status, "services": services}, status_code=503)

    async def metrics_endpoint(_request: Request) -> Response:
        return PlainTextResponse(
            counters.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def client_trust_config(_request: Request) -> Response:
        if not state.client_trust_config:
            return JSONResponse({"code": 503, "message": "the stack is starting"}, 503)
        return Response(state.client_trust_config, media_type=CLIENT_TRUST_CONFIG_MEDIA_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        stack = await build(settings)
        state.stack = stack
        started: list[Component] = []
        syncing: asyncio.Task[None] | None = None
        try:
            for component in stack.components:
                app.router.routes.extend(prefixed(component.routes, component.prefix))
            for component in stack.components:
                if component.start is not None:
                    await component.start()
                started.append(component)
            for step in stack.after_start:
                await step()
            state.client_trust_config = _render_trust_config(stack.trust)
            write_file_atomically(
                settings.data_dir / "client-trust-config.json", state.client_trust_config
            )
            counters.gauges.update(stack.gauges)
            if counters.shared:  # --workers N: background changes reach the others' scrapes
                syncing = asyncio.create_task(counters.keep_synced(), name="metrics-sync")
            state.ready = True
            logger.info("stack ready", extra={"services": [c.name for c in stack.components]})
            yield {}
        finally:
            state.ready = False
            state.draining = True
            if not await counters.drained(settings.shutdown_grace):
                logger.warning(
                    "shutdown: %d write(s) still in flight after %.1f s",
                    counters.writes_in_flight,
                    settings.shutdown_grace,
                )
            if syncing is not None:
                syncing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await syncing
            await close_stack(stack, started)
            logger.info("stack stopped")

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/client-trust-config.json", client_trust_config, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    # the same routes and lifespan, dispatched through the memo of literal paths (routing.py)
    app.router = IndexedRouter(app.router.routes, lifespan=lifespan)
    # One layer in front of the router instead of Starlette's stack (ServerErrorMiddleware,
    # ExceptionMiddleware) around keyless's middlewares: see keyless.http.front.
    app.middleware_stack = FrontMiddleware(
        app.router,
        metrics=counters,
        admission=Admission(
            max_requests=settings.max_requests_in_flight,
            max_body_bytes=settings.max_body_bytes_in_flight,
            on_refused=counters.refused_busy,
        ),
        handlers=EXCEPTION_HANDLERS,
    )
    app.state.stack_state = state
    return app
