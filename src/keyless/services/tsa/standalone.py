"""A TSA-only ASGI app, for running the timestamp authority on its own (tests, benchmarks).

The full stack mounts :func:`keyless.services.tsa.routes.routes` in ``keyless serve``; this module
is the small equivalent for one service::

    KEYLESS_TSA_DIR=/var/lib/keyless/tsa \\
        uvicorn --factory keyless.services.tsa.standalone:app_from_env

Environment: ``KEYLESS_TSA_DIR`` (credentials directory, generated on first start),
``KEYLESS_TSA_NTP`` (comma-separated NTP servers), ``KEYLESS_TSA_MAX_DRIFT`` (seconds),
``KEYLESS_TSA_POLICIES`` (comma-separated OIDs, the first is the default),
``KEYLESS_TSA_CLIENT_BUDGET`` (work units per second per client, as ``[server] client_budget``;
0 switches the per-client budget off).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware

from keyless.errors import ConfigError
from keyless.formats.tsp import DEFAULT_POLICY_OID
from keyless.http.budget import ClientBudget
from keyless.http.errors import EXCEPTION_HANDLERS, CatchAllMiddleware
from keyless.services.tsa.certs import load_or_create_credentials
from keyless.services.tsa.clock import ClockPolicy
from keyless.services.tsa.routes import routes
from keyless.services.tsa.service import ROUNDING_ERROR, TimestampService, TsaSettings


def create_app(service: TimestampService, budget: ClientBudget | None = None) -> Starlette:
    """A Starlette app serving only ``service``'s routes, with its clock guard as lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.close()

    return Starlette(
        routes=routes(service, budget),
        middleware=[Middleware(CatchAllMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )


def _list(name: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in os.environ.get(name, "").split(",") if s.strip())


def app_from_env() -> Starlette:
    """The app configured from ``KEYLESS_TSA_*`` environment variables (module docstring)."""
    directory = os.environ.get("KEYLESS_TSA_DIR")
    if not directory:
        raise ConfigError("KEYLESS_TSA_DIR must name the TSA credentials directory")
    try:
        max_drift = float(os.environ.get("KEYLESS_TSA_MAX_DRIFT", "0.5"))
    except ValueError as exc:
        raise ConfigError("KEYLESS_TSA_MAX_DRIFT must be a number of seconds") from exc
    settings = TsaSettings(
        policies=_list("KEYLESS_TSA_POLICIES") or (DEFAULT_POLICY_OID,),
        accuracy_seconds=max(1, math.ceil(ROUNDING_ERROR + max_drift)),
        clock=ClockPolicy(ntp_servers=_list("KEYLESS_TSA_NTP"), max_drift=max_drift),
    )
    try:
        budget = ClientBudget.per_second(float(os.environ.get("KEYLESS_TSA_CLIENT_BUDGET", "250")))
    except ValueError as exc:
        raise ConfigError("KEYLESS_TSA_CLIENT_BUDGET must be 0 or a positive number") from exc
    credentials = load_or_create_credentials(Path(directory))
    return create_app(TimestampService(credentials, settings), budget)
