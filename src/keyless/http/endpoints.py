"""Hot endpoints as plain ASGI apps: a handler's answer goes out as two ASGI messages.

A Starlette endpoint function (``request -> Response``) runs through ``request_response``: per
request a :class:`~starlette.requests.Request`, two closures, ``wrap_app_handling_exceptions``
with its own ``send`` wrapper (one more coroutine per message), and a
:class:`~starlette.responses.Response` whose ``init_headers`` lower-cases and encodes every
header. On the write endpoints that every signer calls (a Rekor v2 entry, a certificate, a
timestamp) that was ~4 µs of the ~35 µs of CPU the stack's HTTP layers spent per request
(a Rekor v2 entry driven in process against an instant service, issue 20).
:class:`AnswerEndpoint` is an ASGI app instead (Starlette's ``Route`` hands the
request to it as is): its handler returns an :data:`Answer` and it sends the same head and body
the ``Response`` would have — the handler's headers, then ``content-length`` and
``content-type``, in that order.

Exceptions are not caught here: what the handler raises (a :mod:`keyless.errors` class, a
routing ``HTTPException``, anything else) goes up to the stack's front layer
(:mod:`keyless.http.front`), which answers it with the same handlers
(:data:`keyless.http.errors.EXCEPTION_HANDLERS`) Starlette's wrapper would have used, or, in an
app without that layer, to Starlette's ``ExceptionMiddleware``, which does the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

#: ``(status, headers, body)``: headers as lower-case byte pairs, without ``content-length`` and
#: ``content-type`` (added by :func:`send_answer`).
Answer = tuple[int, Sequence[tuple[bytes, bytes]], bytes]
#: What an :class:`AnswerEndpoint` calls for each request.
AnswerHandler = Callable[[Request], Awaitable[Answer]]

JSON_MEDIA_TYPE = b"application/json"


async def send_answer(
    send: Send,
    status: int,
    body: bytes,
    media_type: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Send a whole answer: the head (``headers``, then ``content-length`` and ``content-type``,
    as Starlette's ``Response`` orders them) and the body, as two ASGI messages."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-length", b"%d" % len(body)),
                (b"content-type", media_type),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AnswerEndpoint:
    """A plain ASGI endpoint over ``handler``: each answer is sent with ``media_type``."""

    __slots__ = ("handler", "media_type")

    def __init__(self, handler: AnswerHandler, media_type: bytes = JSON_MEDIA_TYPE) -> None:
        self.handler = handler
        self.media_type = media_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, headers, body = await self.handler(Request(scope, receive))
        await send_answer(send, status, body, self.media_type, headers)
