"""One embedded OIDC provider as a process of its own, over a store other processes share.

``python oidc_process.py STORAGE_URL FD EMAIL:PASSWORD...`` serves the provider (issuer
:data:`ISSUER`, as behind a load balancer) under ``/oidc`` on the listening socket it inherits as
descriptor ``FD``, with ``storage.kv`` of ``STORAGE_URL`` as its shared state — what one worker of
``keyless serve --workers N`` is to the sign-in throttle. Stop it with SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.services.oidc import OidcProvider, OidcUser
from keyless.services.oidc.routes import routes
from keyless.storage import open_storage

ISSUER = "http://keyless.lb.test/oidc"


async def serve(url: str, fd: int, users: list[str]) -> None:
    storage = await open_storage(url)
    provider = OidcProvider(ISSUER, users=[OidcUser.parse(u) for u in users], kv=storage.kv)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await provider.start()
        yield
        await provider.close()

    app = Starlette(routes=[Mount("/oidc", routes=routes(provider))],
                    exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    try:
        await server.serve(sockets=[socket.socket(fileno=fd)])
    finally:
        await storage.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]), sys.argv[3:]))
