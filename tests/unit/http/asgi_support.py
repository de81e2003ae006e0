"""Drive an ASGI app in-process: one request with an empty body, the answer collected."""

from __future__ import annotations

from typing import Any

from starlette.types import Message, Scope


async def messages(app: Any, scope: Scope) -> list[Message]:
    """The ASGI messages ``app`` sends in answer to ``scope``."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def call(app: Any, scope: Scope) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of ``app``'s answer to ``scope``."""
    answer = await messages(app, scope)
    start = answer[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in answer[1:])
