"""Throttling of secret checks: passwords, client secrets, one-time codes (OWASP ASVS V2.2.1).

Three limits apply to every check of a secret for an *account* (a user, or a confidential
client) from a client *address*:

* **per (account, address)** — a hard limit: after ``max_failures`` failures in the sliding
  ``window``, that address may not try that account until the oldest failure leaves the window
  (429 + ``Retry-After``). Someone else's failures from elsewhere never refuse a correct secret.
* **per address, across accounts** — a hard limit against credential stuffing:
  ``address_max_failures`` failures in the window from one address, whatever the accounts.
* **per account, soft** — never a refusal because of others' failures, but a bounded cost: at
  most ``account_concurrency`` checks of one account run at once (the others queue, for at most
  ``max_wait`` seconds), and once the account has ``max_failures`` failures in the window from
  anywhere, every check of it first waits ``backoff_base`` seconds, doubling per further failure,
  at most ``backoff_max``. A distributed guesser gets about one guess per ``backoff_max`` seconds
  per account and process; the owner gets in after a short delay.

The two hard limits hold across every process that shares the store (``keyless serve
--workers N``, several servers on one PostgreSQL database): their counts live in the event
windows of ``storage.kv`` (:class:`keyless.storage.seam.EventWindows`), namespace
:data:`NAMESPACE`. An attempt is *reserved* before the secret is verified — one event under the
(account, address) key and one under the address key, recorded only if neither is at its limit,
in one transaction of the store — so concurrent wrong guesses, on any process, cannot all pass
the limit before the first one is decided. A wrong secret leaves its reservation as the failure
(counted from the moment it was reserved, also when the process dies while checking); a correct
one withdraws it and clears its address's failures for that account; a check that never started
is refunded. Keys are stored as SHA-256 digests (no e-mail address or client address in the
database). The processes' clocks should agree to within a few seconds (NTP).

The soft per-account limit stays per process (its counts, queue and delays are in memory): it
only slows a guesser spread over many addresses, whose guesses the per-address limit already
bounds, so sharing it is not needed for the guarantee; with N processes it slows N times less.

:class:`EventLimiter` (device codes and security-key challenges per address, each a stored
row) counts in the same store, in namespaces of its own, and so holds across processes too.

Fail closed: when the store cannot record a reservation, the attempt is refused (429 with a
message saying so) and the secret is not checked. When a withdrawal fails, the reservation stays
and counts as a failure until it leaves the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from keyless.errors import Pushback, Unavailable
from keyless.services.oidc.kv import MemoryKV
from keyless.storage.seam import EventWindows

logger = logging.getLogger(__name__)

#: the ``storage.kv`` namespace of the hard limits' events
NAMESPACE = "oidc-throttle"


class FailureWindow:
    """Events per key in a sliding window, in this process's memory (the soft limit's counts)."""

    def __init__(
        self, window: float, clock: Callable[[], float] = time.time, *, max_keys: int = 100_000
    ) -> None:
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._events: dict[str, deque[float]] = {}

    def _live(self, key: str) -> deque[float]:
        times = self._events.get(key)
        if times is None:
            return deque()
        horizon = self._clock() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._events[key]
        return times

    def count(self, key: str) -> int:
        """Events within the window."""
        return len(self._live(key))

    def record(self, key: str) -> None:
        """Count one event of now against ``key``."""
        if len(self._events) >= self._max_keys:
            for known in list(self._events):
                self._live(known)
        times = self._live(key)
        times.append(self._clock())
        self._events[key] = times


async def _reserve(
    events: EventWindows,
    namespace: str,
    limits: Sequence[tuple[str, int]],
    event: str,
    *,
    now: float,
    window: float,
) -> tuple[str, float] | None:
    """``events.reserve_event``, where a store failure refuses (fail closed)."""
    try:
        return await events.reserve_event(namespace, limits, event, now, window)
    except Exception as exc:  # whatever broke, nothing passes uncounted
        logger.warning("refused: the throttle's store failed: %s", exc)
        raise Unavailable(
            "sign-in is unavailable: its attempt counts cannot be kept; try again shortly",
            retry_after=5.0,
        ) from exc


def _digest(kind: str, *parts: str) -> str:
    """The stored key of a throttled (kind, parts): fixed length, no personal data, no NUL."""
    joined = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return f"{kind}:{hashlib.sha256(joined).hexdigest()}"


@dataclass
class _Gate:
    """The per-account in-flight cap; removed when nobody holds or waits for it."""

    slots: asyncio.Semaphore
    users: int = 0


@dataclass
class Attempt:
    """One reserved check of a secret; call :meth:`succeeded` when the secret was right."""

    ok: bool = False
    verifying: bool = field(default=False, repr=False)

    def succeeded(self) -> None:
        self.ok = True


class LoginLimiter:
    """Throttles checks of a secret per (account, address), per address (both across every
    process sharing ``events``), and softly per account (in this process).

    Use :meth:`attempt` around the verification::

        async with limiter.attempt("user:" + email, remote) as attempt:
            if await check(secret):
                attempt.succeeded()
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 300.0,
        clock: Callable[[], float] = time.time,
        *,
        events: EventWindows | None = None,
        address_max_failures: int = 20,
        account_concurrency: int = 1,
        backoff_base: float = 0.25,
        backoff_max: float = 2.0,
        max_wait: float = 10.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        max_keys: int = 100_000,
    ) -> None:
        self.max_failures = max_failures
        self.address_max_failures = address_max_failures
        self.window = window
        self._clock = clock
        #: where the hard limits count (default: this process only — give ``storage.kv``)
        self.events: EventWindows = events if events is not None else MemoryKV(clock)
        # counts only (no hard limit): the soft per-account backoff reads it
        self._accounts = FailureWindow(window, clock, max_keys=max_keys)
        self._concurrency = account_concurrency
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_wait = max_wait
        self._sleep = sleep
        self._gates: dict[str, _Gate] = {}
        #: secrets checked in this process (passwords, client secrets, device user codes):
        #: accepted, and refused or cut off
        self.logins = 0
        self.login_failures = 0

    def backoff(self, account: str) -> float:
        """Seconds a check of ``account`` waits now, from its failures (any address) seen by
        this process."""
        extra = self._accounts.count(account) - self.max_failures
        if extra < 0:
            return 0.0
        return float(min(self._backoff_max, self._backoff_base * 2 ** min(extra, 32)))

    async def _reserve(self, limits: Sequence[tuple[str, int]], event: str) -> None:
        """Record ``event`` under every key of ``limits``, or raise :class:`Pushback` (also when
        the store fails: no check of a secret runs unthrottled)."""
        now = self._clock()
        refused = await _reserve(self.events, NAMESPACE, limits, event, now=now,
                                 window=self.window)
        if refused is None:
            return
        key, oldest = refused
        retry = max(1.0, oldest + self.window - now)
        if key.startswith("ip:"):
            raise Pushback(
                "too many failed sign-ins from this address; try again later", retry_after=retry
            )
        raise Pushback(
            "too many failed sign-ins for this account from this address; try again later",
            retry_after=retry,
        )

    async def _withdraw(self, event: str, keys: Sequence[str], clear: Sequence[str]) -> None:
        """Withdraw a reservation; if the store fails it stays, counted as a failure."""
        try:
            await self.events.withdraw_event(NAMESPACE, event, keys, clear)
        except Exception as exc:  # the reservation stays: closed, not open
            logger.warning("a sign-in reservation could not be withdrawn: %s", exc)

    @contextlib.asynccontextmanager
    async def attempt(self, account: str | None, address: str) -> AsyncIterator[Attempt]:
        """Reserve a check of ``account``'s secret from ``address`` (None: an address-only
        guess, e.g. a device user code); raises :class:`Pushback` when a hard limit is reached
        or the store cannot count.

        Leaving the block without :meth:`Attempt.succeeded` records a failure, also when the
        check was cancelled while it ran; a check that never started (waiting for the account's
        slot) is refunded.
        """
        address_key = _digest("ip", address)
        pair_keys = [_digest("pair", account, address)] if account is not None else []
        event = secrets.token_hex(16)
        await self._reserve(
            [(address_key, self.address_max_failures),
             *((key, self.max_failures) for key in pair_keys)],
            event,
        )  # fmt: skip
        attempt = Attempt()
        try:
            if account is None:
                attempt.verifying = True
                yield attempt
            else:
                async with self._account_slot(account):
                    delay = self.backoff(account)
                    if delay > 0:
                        await self._sleep(delay)
                    attempt.verifying = True
                    yield attempt
        finally:
            if attempt.ok:
                self.logins += 1
                # the refund, and this address's failures for this account are forgiven
                await self._withdraw(event, [address_key], clear=pair_keys)
            elif attempt.verifying:
                self.login_failures += 1  # the reservation stays: it is the failure
                if account is not None:
                    self._accounts.record(account)
            else:
                await self._withdraw(event, [address_key, *pair_keys], clear=())

    @contextlib.asynccontextmanager
    async def _account_slot(self, account: str) -> AsyncIterator[None]:
        gate = self._gates.get(account)
        if gate is None:
            gate = self._gates[account] = _Gate(asyncio.Semaphore(self._concurrency))
        gate.users += 1
        try:
            try:
                await asyncio.wait_for(gate.slots.acquire(), self._max_wait)
            except TimeoutError as exc:
                raise Pushback(
                    "too many sign-ins for this account at once; try again shortly",
                    retry_after=1.0,
                ) from exc
            try:
                yield
            finally:
                gate.slots.release()
        finally:
            gate.users -= 1
            if gate.users == 0:
                del self._gates[account]


class EventLimiter:
    """At most ``limit`` events per key in a sliding window (e.g. device codes per address),
    counted in ``events`` under ``namespace`` — with ``storage.kv``, across every process."""

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.time,
        *,
        message: str,
        namespace: str,
        events: EventWindows | None = None,
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._message = message
        self._namespace = namespace
        self._events: EventWindows = events if events is not None else MemoryKV(clock)

    async def take(self, key: str) -> None:
        """Count one event for ``key``, or raise :class:`Pushback` if it is at its limit (or
        the store cannot count)."""
        now = self._clock()
        refused = await _reserve(
            self._events, self._namespace, [(_digest("key", key), self._limit)],
            secrets.token_hex(16), now=now, window=self._window,
        )  # fmt: skip
        if refused is not None:
            raise Pushback(self._message, retry_after=max(1.0, refused[1] + self._window - now))
