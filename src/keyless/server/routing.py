"""The stack's router: Starlette's, with its answers for literal paths remembered.

Starlette's :class:`~starlette.routing.Router` tries every route's regular expression in order
for every request. The whole stack has a few dozen routes, and the hot write endpoints (the TSA,
the CA, the logs) sit behind the read routes, so every timestamp paid ~30 µs of regex matching
(about a tenth of its server CPU). Which route wins depends only on the path and the method while
the route list does not change, so :class:`IndexedRouter` asks Starlette's own matching once per
(path, method) whose winner is a plain :class:`~starlette.routing.Route` without path parameters,
and dispatches later requests for that pair directly; everything else (parameters, mounts, 405s,
404s, redirects, lifespan) goes through Starlette unchanged. The memo holds only routes' literal
paths with the standard methods, so its size is bounded by the route table, whatever clients
send; it is emptied whenever routes are added (the stack mounts its services at start).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Lifespan, Receive, Scope, Send

#: Methods whose winners are remembered (any other method string goes through Starlette).
MEMO_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class IndexedRouter(Router):
    """A :class:`~starlette.routing.Router` that remembers the winner for literal paths."""

    def __init__(
        self, routes: Sequence[BaseRoute], *, lifespan: Lifespan[Any] | None = None
    ) -> None:
        super().__init__(routes, lifespan=lifespan)
        self._memo: dict[tuple[str, str], Route] = {}
        self._memo_size = -1  # len(self.routes) the memo was made for

    def winner(self, scope: Scope) -> Route | None:
        """The route Starlette would hand a top-level HTTP request to, if it is a plain
        :class:`Route` without path parameters (the only winners remembered), else None."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                if type(route) is Route and not route.param_convertors:
                    return route
                return None
        return None

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("root_path") or "path_params" in scope:
            await super().app(scope, receive, send)
            return
        if len(self.routes) != self._memo_size:
            self._memo.clear()
            self._memo_size = len(self.routes)
        key = (scope["path"], scope["method"])
        route = self._memo.get(key)
        if route is None:
            found = self.winner(scope) if key[1] in MEMO_METHODS else None
            if found is None:
                await super().app(scope, receive, send)
                return
            route = self._memo[key] = found
        # what Router.app does for a full match (the child scope of a parameterless Route)
        scope.setdefault("router", self)
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        await route.handle(scope, receive, send)
