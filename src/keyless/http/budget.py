"""Per-client budgets for the expensive unauthenticated endpoints (HTTP 429 + Retry-After).

The logs' write, lookup and search endpoints, the CT log's ``add-chain``, the CA's signing
endpoints and the TSA are open to anyone and cost real CPU (JSON parsing, canonicalisation,
token, signature and chain checks, proofs, signing). Each
client address (``request.client``: the real client once ``[server] trusted_proxies`` vouched
for the proxy's ``X-Forwarded-For``; an IPv6 client by its /64) has a budget of *work units*,
a unit being roughly a millisecond of server CPU, that refills at a steady rate:

* a request is admitted while the client's balance is positive, and costs
  ``1 + body bytes / 32 KiB`` units (the declared ``Content-Length``: parsing JSON costs about a
  millisecond per 32 KiB) — a 4 MiB body is 129 units;
* work found only later (search results with their proofs, extra body bytes) is charged after the
  fact and may drive the balance negative, so the *next* request waits;
* an exhausted client is answered 429 with ``Retry-After`` saying when its balance is positive.

The refill rate is ``[server] client_budget`` (units per second, default 250; 0 switches budgets
off). Budgets are per process and per service (each service's routes hold their own), like the OIDC
login throttle: behind a load balancer every process limits on its own.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections.abc import Callable

from starlette.requests import Request

from keyless.http.errors import TooManyRequests

#: Body bytes that cost one work unit.
BYTES_PER_UNIT = 32 * 1024
#: Units a client may spend at once: 500 small requests, or about four of 4 MiB.
DEFAULT_BURST = 500.0
#: Units a client gets back per second: a quarter of a core per client and service, far above
#: any one signer (a CI job signs a few artifacts), far below what starves other clients.
DEFAULT_RATE = 250.0


def client_address(request: Request) -> str:
    """The budget key of a request's client (after trusted-proxy resolution): its IPv4
    address, or its IPv6 /64 — one host commonly holds a whole /64."""
    client = request.scope.get("client")  # what request.client wraps in a new Address
    host: str = client[0] if client else "unknown"
    # memoised (parsing an address costs ~5 µs and a client sends many requests); only short
    # strings, so that the cache stays small whatever a proxy's X-Forwarded-For holds
    return _budget_key_cached(host) if len(host) <= 64 else _budget_key(host)


def _budget_key(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else address)


_budget_key_cached = functools.lru_cache(maxsize=4096)(_budget_key)


def _declared(request: Request) -> int:
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() and len(declared) <= 19 else 0


class ClientBudget:
    """Token buckets of work units, one per client address (bounded memory)."""

    def __init__(
        self,
        *,
        burst: float = DEFAULT_BURST,
        rate: float = DEFAULT_RATE,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 65_536,
    ) -> None:
        self._burst = burst
        self._rate = rate
        self._clock = clock
        self._max_clients = max_clients
        self._balances: dict[str, tuple[float, float]] = {}  # client → (balance, as of)

    def balance(self, client: str) -> float:
        """The client's current balance (refilled up to the burst)."""
        held = self._balances.get(client)
        if held is None:
            return self._burst
        balance, since = held
        return min(self._burst, balance + (self._clock() - since) * self._rate)

    @classmethod
    def per_second(cls, rate: float) -> ClientBudget:
        """A budget refilled at ``rate`` units per second with a two-second burst; ``rate`` 0
        switches budgets off (``[server] client_budget = 0``, e.g. behind a proxy that limits)."""
        if rate < 0:
            raise ValueError("a client budget cannot be negative")
        if rate == 0:
            return cls(burst=math.inf, rate=math.inf)
        return cls(burst=2 * rate, rate=rate)

    def admit(self, request: Request, cost: float = 1.0) -> str:
        """Admit ``request`` and charge its base cost (``cost`` units plus its declared body
        size), or raise :class:`TooManyRequests`.

        Returns the client address, for :meth:`charge` after the fact.
        """
        client = client_address(request)
        if math.isinf(self._rate):
            return client
        balance = self.balance(client)
        if balance <= 0:
            wait = max(1, math.ceil(-balance / self._rate + 1e-9))
            raise TooManyRequests(
                f"this client ({client}) has used its request budget; retry in {wait} s",
                retry_after=wait,
            )
        self._set(client, balance - cost - _declared(request) / BYTES_PER_UNIT)
        return client

    def settle_body(self, request: Request, client: str, size: int) -> None:
        """Charge body bytes beyond the declared ``Content-Length`` (chunked uploads)."""
        extra = size - _declared(request)
        if extra > 0:
            self.charge(client, extra / BYTES_PER_UNIT)

    def charge(self, client: str, units: float) -> None:
        """Charge work found after admission (may leave the balance negative)."""
        if math.isinf(self._rate):
            return
        self._set(client, self.balance(client) - units)

    def _set(self, client: str, balance: float) -> None:
        self._balances.pop(client, None)  # re-insert: the dict stays in least-recent order
        self._balances[client] = (balance, self._clock())
        if len(self._balances) > self._max_clients:
            self._forget()

    def _forget(self) -> None:
        """Drop the least recently charged eighth of the clients (amortised O(1) per request;
        a forgotten client starts again with a full bucket)."""
        for client in list(self._balances)[: max(1, self._max_clients // 8)]:
            del self._balances[client]
