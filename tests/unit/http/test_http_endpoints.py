"""Plain ASGI endpoints (:mod:`keyless.http.endpoints`) answer exactly what a Starlette endpoint
function answers, in two messages, and what their handlers raise is answered by the front layer
as before."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgi_support import messages
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import Scope

from keyless import errors
from keyless.http.admission import Admission
from keyless.http.endpoints import Answer, AnswerEndpoint
from keyless.http.errors import EXCEPTION_HANDLERS, TooManyRequests
from keyless.http.front import FrontMiddleware
from keyless.http.metrics import Metrics

PATH = "/api/v2/log/entries"


def _scope(method: str = "POST") -> Scope:
    # "app" is in every scope the stack's Starlette app hands on: a wrong method then raises
    return {"type": "http", "method": method, "path": PATH, "headers": [], "query_string": b"",
            "client": ("192.0.2.1", 1), "root_path": "", "app": object()}


def _stacks(outcome: Answer | Exception) -> tuple[Any, Any]:
    """The same outcome served by a Starlette endpoint function and by an AnswerEndpoint, each
    behind the front layer and a router, as in the stack."""

    async def function(_request: Request) -> Response:
        if isinstance(outcome, Exception):
            raise outcome
        status, headers, body = outcome
        return Response(body, status_code=status, media_type="application/json",
                        headers={k.decode(): v.decode() for k, v in headers})

    async def handler(_request: Request) -> Answer:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def front(endpoint: Any) -> FrontMiddleware:
        return FrontMiddleware(Router([Route(PATH, endpoint, methods=["POST"])]),
                               metrics=Metrics(), admission=Admission(),
                               handlers=EXCEPTION_HANDLERS)

    return front(function), front(AnswerEndpoint(handler))


@pytest.mark.parametrize("outcome", [
    (201, [(b"x-log-index", b"42")], b'{"logIndex":"42"}'),
    (200, [], b"{}"),
])
async def test_an_answer_is_sent_as_a_starlette_response_would_be_in_twomessages(
    outcome: Answer,
) -> None:
    before, after = _stacks(outcome)
    sent = await messages(after, _scope())
    assert sent == await messages(before, _scope())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


@pytest.mark.parametrize("exc", [
    errors.InvalidInput("request body is not valid JSON: Expecting value"),
    errors.TooLarge("request body exceeds the limit of 10 bytes"),
    TooManyRequests("this client has used its request budget; retry in 3 s", retry_after=3),
    errors.Conflict("already there", location="/x/1"),
    RuntimeError("secret internal detail"),
])
async def test_what_a_handler_raises_is_answered_as_before(exc: Exception) -> None:
    before, after = _stacks(exc)
    sent = await messages(after, _scope())
    assert sent == await messages(before, _scope())
    assert json.loads(sent[1]["body"])["code"] == sent[0]["status"] >= 400


async def test_a_wrong_method_is_answered_405_as_before() -> None:
    before, after = _stacks((201, [], b"{}"))
    sent = await messages(after, _scope("GET"))
    assert sent == await messages(before, _scope("GET"))
    assert sent[0]["status"] == 405
    assert json.loads(sent[1]["body"])["message"] == (
        f"method GET is not allowed on {PATH}; use POST")
