"""Serve embedded OIDC providers on real uvicorn servers bound to free 127.0.0.1 ports."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.services.oidc import OidcProvider
from keyless.services.oidc.routes import routes as oidc_routes


@dataclass
class RunningProvider:
    """A provider being served; ``base`` is the public URL, ``provider.issuer`` its issuer."""

    base: str
    provider: OidcProvider

    @property
    def issuer(self) -> str:
        return self.provider.issuer


@contextlib.contextmanager
def serve_provider(make: Callable[[str], OidcProvider]) -> Iterator[RunningProvider]:
    """Start ``make(issuer)`` under ``/oidc`` of a fresh uvicorn server; stop it afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    provider = make(base + "/oidc")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await provider.start()
        yield
        await provider.close()

    app = Starlette(
        routes=[Mount("/oidc", routes=oidc_routes(provider))],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield RunningProvider(base, provider)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(name="provider_factory")
def provider_factory_fixture() -> Iterator[Callable[..., RunningProvider]]:
    """Start any number of independent providers: ``provider_factory(users=[...], ...)``."""
    with contextlib.ExitStack() as stack:

        def start(**kwargs: object) -> RunningProvider:
            return stack.enter_context(
                serve_provider(lambda issuer: OidcProvider(issuer, **kwargs))  # type: ignore[arg-type]
            )

        yield start
