"""LoginLimiter: reservations, per (account, address) and per-address limits, soft backoff."""

from __future__ import annotations

import asyncio

import pytest

from keyless.errors import Pushback, Unavailable
from keyless.services.oidc.kv import MemoryKV
from keyless.services.oidc.ratelimit import EventLimiter, LoginLimiter
from keyless.storage import Storage
from keyless.storage.memory import MemoryBackend


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """Records the backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def limiter(clock: Clock, sleeps: Sleeps | None = None, **kwargs: object) -> LoginLimiter:
    return LoginLimiter(3, 60, clock, sleep=sleeps or Sleeps(), **kwargs)  # type: ignore[arg-type]


async def fail(limiter: LoginLimiter, account: str | None, address: str) -> None:
    async with limiter.attempt(account, address):
        pass


async def test_failures_per_account_and_address_in_a_window() -> None:
    clock = Clock()
    lim = limiter(clock)
    for _ in range(3):
        await fail(lim, "user:a", "1")
    with pytest.raises(Pushback) as info:
        await fail(lim, "user:a", "1")
    assert 59 <= info.value.retry_after <= 60
    async with lim.attempt("user:a", "2") as attempt:  # elsewhere: still tried
        attempt.succeeded()
    await fail(lim, "user:b", "1")  # same address, other account
    clock.now += 61
    await fail(lim, "user:a", "1")


async def test_attempts_in_flight_are_reserved() -> None:
    """Concurrent checks count before they finish: the limit+1st is refused at once."""
    lim = limiter(Clock(), account_concurrency=10)
    release = asyncio.Event()
    entered: list[int] = []

    async def guess(i: int) -> None:
        async with lim.attempt("user:a", "1"):
            entered.append(i)
            await release.wait()

    tasks = [asyncio.create_task(guess(i)) for i in range(3)]
    while len(entered) < 3:
        await asyncio.sleep(0)
    with pytest.raises(Pushback):
        await fail(lim, "user:a", "1")
    release.set()
    await asyncio.gather(*tasks)
    with pytest.raises(Pushback):  # the three became failures
        await fail(lim, "user:a", "1")


async def test_success_refunds_and_clears_its_address() -> None:
    lim = limiter(Clock())
    for _ in range(2):
        await fail(lim, "user:a", "1")
    async with lim.attempt("user:a", "1") as attempt:
        attempt.succeeded()
    for _ in range(3):
        await fail(lim, "user:a", "1")


async def test_per_address_limit_across_accounts() -> None:
    lim = limiter(Clock(), address_max_failures=4)
    for account in ("user:a", "user:b", "user:c", None):
        await fail(lim, account, "1")
    with pytest.raises(Pushback, match="from this address"):
        async with lim.attempt("user:d", "1") as attempt:
            attempt.succeeded()
    async with lim.attempt("user:d", "2") as attempt:
        attempt.succeeded()


async def test_account_backoff_is_bounded_and_never_a_refusal() -> None:
    sleeps = Sleeps()
    lim = limiter(Clock(), sleeps, address_max_failures=1000, backoff_base=0.5, backoff_max=2.0)
    for address in range(20):  # a distributed guesser
        await fail(lim, "user:a", str(address))
    assert max(sleeps.delays) == 2.0
    assert sleeps.delays[:4] == [0.5, 1.0, 2.0, 2.0]
    async with lim.attempt("user:a", "owner") as attempt:  # the owner waits, then gets in
        attempt.succeeded()
    assert sleeps.delays[-1] == 2.0


async def test_one_check_per_account_at_a_time() -> None:
    lim = limiter(Clock(), account_concurrency=1)
    inside = asyncio.Event()
    release = asyncio.Event()
    order: list[str] = []

    async def first() -> None:
        async with lim.attempt("user:a", "1"):
            order.append("first in")
            inside.set()
            await release.wait()
            order.append("first out")

    async def second() -> None:
        await inside.wait()
        async with lim.attempt("user:a", "2") as attempt:
            order.append("second in")
            attempt.succeeded()

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await inside.wait()
    for _ in range(10):
        await asyncio.sleep(0)
    assert order == ["first in"]
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["first in", "first out", "second in"]


async def test_waiting_too_long_is_refused_and_refunded() -> None:
    lim = limiter(Clock(), account_concurrency=1, max_wait=0.01)
    release = asyncio.Event()
    inside = asyncio.Event()

    async def hold() -> None:
        async with lim.attempt("user:a", "1") as attempt:
            inside.set()
            await release.wait()
            attempt.succeeded()

    holder = asyncio.create_task(hold())
    await inside.wait()
    for _ in range(3):
        with pytest.raises(Pushback, match="at once"):
            await fail(lim, "user:a", "2")
    release.set()
    await holder
    async with lim.attempt("user:a", "2") as attempt:  # the timeouts were not failures
        attempt.succeeded()
    assert lim.backoff("user:a") == 0


async def test_a_check_cancelled_while_running_counts_as_a_failure() -> None:
    lim = limiter(Clock())
    inside = asyncio.Event()

    async def guess() -> None:
        async with lim.attempt("user:a", "1"):
            inside.set()
            await asyncio.Event().wait()

    for _ in range(3):
        task = asyncio.create_task(guess())
        await inside.wait()
        inside.clear()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    with pytest.raises(Pushback):
        await fail(lim, "user:a", "1")


async def test_limiters_sharing_a_store_share_the_hard_limits() -> None:
    """Two processes' limiters over one store: failures at either count at both."""
    clock, shared = Clock(), MemoryKV()
    a, b = (LoginLimiter(3, 60, clock, events=shared, sleep=Sleeps()) for _ in range(2))
    await fail(a, "user:a", "1")
    await fail(b, "user:a", "1")
    await fail(a, "user:a", "1")
    for lim in (a, b):
        with pytest.raises(Pushback, match="this account from this address"):
            await fail(lim, "user:a", "1")
    async with b.attempt("user:a", "2") as attempt:  # another address: its own budget
        attempt.succeeded()


async def test_a_failing_store_refuses_the_attempt_unchecked() -> None:
    backend = MemoryBackend()
    storage = Storage(backend)
    try:
        lim = LoginLimiter(3, 60, Clock(), events=storage.kv, sleep=Sleeps())
        backend.faults.fail("kv")
        with pytest.raises(Unavailable, match="unavailable") as info:  # 503, not the client's
            async with lim.attempt("user:a", "1"):
                pytest.fail("the secret was checked without a reservation")
        assert info.value.retry_after >= 1
        async with lim.attempt("user:a", "1") as attempt:  # the store is back
            attempt.succeeded()
    finally:
        await storage.close()


async def test_a_refund_the_store_failed_stays_counted_as_a_failure() -> None:
    backend = MemoryBackend()
    storage = Storage(backend)
    try:
        lim = LoginLimiter(3, 60, Clock(), events=storage.kv, sleep=Sleeps())
        await fail(lim, "user:a", "1")
        await fail(lim, "user:a", "1")
        async with lim.attempt("user:a", "1") as attempt:
            backend.faults.fail("kv")  # the withdrawal after a right secret fails
            attempt.succeeded()
        assert lim.logins == 1
        with pytest.raises(Pushback):
            await fail(lim, "user:a", "1")
    finally:
        await storage.close()


async def test_event_limiter() -> None:
    clock = Clock()
    events = EventLimiter(2, 60, clock, message="slow down", namespace="test")
    await events.take("ip:1")
    await events.take("ip:1")
    with pytest.raises(Pushback, match="slow down") as info:
        await events.take("ip:1")
    assert info.value.retry_after == 60
    await events.take("ip:2")
    clock.now += 61
    await events.take("ip:1")


async def test_event_limiters_sharing_a_store_share_the_limit() -> None:
    clock, shared = Clock(), MemoryKV()
    a, b = (EventLimiter(2, 60, clock, message="slow down", namespace="test", events=shared)
            for _ in range(2))
    await a.take("ip:1")
    await b.take("ip:1")
    for limiter_ in (a, b):
        with pytest.raises(Pushback, match="slow down"):
            await limiter_.take("ip:1")
