"""Throttling of secret checks: passwords and client secrets (OWASP ASVS V2.2.1).

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
  per account; the owner gets in after a short delay.

An attempt is *reserved* before the secret is verified and counts as a failure while it is in
flight, so concurrent wrong guesses cannot all pass the limit before the first one is recorded;
a correct secret refunds its reservation (and clears its address's failures for that account).
State is per process and the event loop is the only synchronisation (no ``await`` between a check
and its reservation). Behind a load balancer each process throttles on its own, so the effective
limits are multiplied by the number of processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from keyless.errors import Pushback


class FailureWindow:
    """Events per key in a sliding window, plus reservations for attempts still in flight."""

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.time,
        *,
        max_keys: int = 100_000,
        message: str = "too many attempts; try again later",
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._message = message
        self._events: dict[str, deque[float]] = {}
        self._in_flight: dict[str, int] = {}

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
        """Events within the window plus reservations in flight."""
        return len(self._live(key)) + self._in_flight.get(key, 0)

    def check(self, *keys: str) -> None:
        """Raise :class:`Pushback` if any key is at its limit (reservations included)."""
        for key in keys:
            if self.count(key) >= self.limit:
                times = self._live(key)
                # only reservations: retry once one of them has been decided
                retry = times[0] + self.window - self._clock() if times else 1.0
                raise Pushback(self._message, retry_after=max(1.0, retry))

    def reserve(self, *keys: str) -> None:
        """Check, then hold one place on every key until :meth:`release` (atomic: no await)."""
        self.check(*keys)
        for key in keys:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def release(self, *keys: str, record: bool) -> None:
        """Give back reserved places; ``record`` turns each into an event of now."""
        for key in keys:
            left = self._in_flight.get(key, 0) - 1
            if left > 0:
                self._in_flight[key] = left
            else:
                self._in_flight.pop(key, None)
        if record:
            self.record(*keys)

    def record(self, *keys: str) -> None:
        """Count one event of now against every key."""
        if len(self._events) >= self._max_keys:
            for key in list(self._events):
                self._live(key)
        now = self._clock()
        for key in keys:
            times = self._live(key)
            times.append(now)
            self._events[key] = times

    def forget(self, key: str) -> None:
        """Drop the recorded events of ``key`` (reservations stay)."""
        self._events.pop(key, None)


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
    """Throttles checks of a secret per (account, address), per address, and softly per account.

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
        address_max_failures: int = 20,
        account_concurrency: int = 1,
        backoff_base: float = 0.25,
        backoff_max: float = 2.0,
        max_wait: float = 10.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        max_keys: int = 100_000,
    ) -> None:
        self.max_failures = max_failures
        self._pairs = FailureWindow(
            max_failures, window, clock, max_keys=max_keys,
            message="too many failed sign-ins for this account from this address; "
            "try again later",
        )  # fmt: skip
        self._addresses = FailureWindow(
            address_max_failures, window, clock, max_keys=max_keys,
            message="too many failed sign-ins from this address; try again later",
        )  # fmt: skip
        # counts only (no hard limit): the soft per-account backoff reads it
        self._accounts = FailureWindow(max_failures, window, clock, max_keys=max_keys)
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
        """Seconds a check of ``account`` waits now, from its failures (any address)."""
        extra = self._accounts.count(account) - self.max_failures
        if extra < 0:
            return 0.0
        return float(min(self._backoff_max, self._backoff_base * 2 ** min(extra, 32)))

    @contextlib.asynccontextmanager
    async def attempt(self, account: str | None, address: str) -> AsyncIterator[Attempt]:
        """Reserve a check of ``account``'s secret from ``address`` (None: an address-only
        guess, e.g. a device user code); raises :class:`Pushback` when a hard limit is reached.

        Leaving the block without :meth:`Attempt.succeeded` records a failure, also when the
        check was cancelled while it ran; a check that never started (waiting for the account's
        slot) is refunded.
        """
        address_key = "ip:" + address
        pair_keys = (f"{account}\x00{address}",) if account is not None else ()
        self._addresses.check(address_key)
        self._pairs.reserve(*pair_keys)
        self._addresses.reserve(address_key)
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
            failed = attempt.verifying and not attempt.ok
            if attempt.ok:
                self.logins += 1
            elif failed:
                self.login_failures += 1
            self._pairs.release(*pair_keys, record=failed)
            self._addresses.release(address_key, record=failed)
            if account is not None and failed:
                self._accounts.record(account)
            if attempt.ok:
                for key in pair_keys:
                    self._pairs.forget(key)

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
    """At most ``limit`` events per key in a sliding window (e.g. device codes per address)."""

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.time,
        *,
        message: str,
        max_keys: int = 100_000,
    ) -> None:
        self._window = FailureWindow(limit, window, clock, max_keys=max_keys, message=message)

    def take(self, key: str) -> None:
        """Count one event for ``key``, or raise :class:`Pushback` if it is at its limit."""
        self._window.check(key)
        self._window.record(key)
