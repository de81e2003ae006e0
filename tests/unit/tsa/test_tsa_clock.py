"""The clock-drift guard: offline step detection and SNTP checks against a fake server."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from tsa_fixtures import *  # noqa: F403  (the TSA test fixtures)

from keyless.errors import ConfigError, Unavailable
from keyless.services.tsa.clock import ClockGuard, ClockPolicy, NtpError, parse_server, sntp_offset


class FakeClocks:
    """A wall clock and a monotonic clock that tests move independently."""

    def __init__(self) -> None:
        self.wall = 1_764_000_000.0
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono


def _guard(clocks: FakeClocks, **policy: object) -> ClockGuard:
    return ClockGuard(ClockPolicy(**policy), clock=clocks.time, monotonic=clocks.monotonic)  # type: ignore[arg-type]


def test_steady_clock_is_trusted() -> None:
    clocks = FakeClocks()
    guard = _guard(clocks)
    for _ in range(5):
        clocks.advance(10)
        assert guard.now() == clocks.wall
    assert guard.trusted


@pytest.mark.parametrize("step", [5.0, -5.0, 3600.0])
def test_a_wall_clock_step_refuses_with_retry_after(step: float) -> None:
    clocks = FakeClocks()
    guard = _guard(clocks, max_jump=1.0, retry_after=7.0)
    clocks.wall += step
    with pytest.raises(Unavailable, match="stepped") as info:
        guard.now()
    assert info.value.retry_after == 7.0
    clocks.advance(1)
    with pytest.raises(Unavailable):
        guard.now()  # stays refused
    assert not guard.trusted
    assert guard.status()["trusted"] is False


def test_small_slew_within_max_jump_is_fine() -> None:
    clocks = FakeClocks()
    guard = _guard(clocks, max_jump=1.0)
    clocks.wall += 0.5
    assert guard.now() == clocks.wall


def test_offline_step_is_accepted_after_the_hold() -> None:
    clocks = FakeClocks()
    guard = _guard(clocks, jump_hold=60.0)
    clocks.wall += 10
    with pytest.raises(Unavailable):
        guard.now()
    clocks.advance(59)
    with pytest.raises(Unavailable):
        guard.now()
    clocks.advance(2)
    assert guard.now() == clocks.wall
    clocks.advance(1)
    assert guard.now() == clocks.wall  # re-baselined: no new step


def test_sntp_offset_against_fake_server(fake_ntp: Any) -> None:
    fake_ntp.offset = 2.5
    offset = sntp_offset("127.0.0.1", fake_ntp.port, timeout=30)
    assert offset == pytest.approx(2.5, abs=0.5)
    fake_ntp.offset = -1.0
    assert sntp_offset("127.0.0.1", fake_ntp.port, timeout=30) == pytest.approx(-1.0, abs=0.5)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("stratum", 0, "not synchronised"),
        ("leap", 3, "not synchronised"),
        ("mode", 3, "mode"),
        ("echo_origin", False, "failed|no matching"),
        ("silent", True, "failed|no matching"),
    ],
)
def test_sntp_refuses_unusable_answers(
    fake_ntp: Any, field: str, value: object, message: str
) -> None:
    setattr(fake_ntp, field, value)
    # no usable answer ever comes to the last two: the timeout is what ends them, and a short
    # one is right on any machine; the others are answered, which may be slow under load
    never_answered = field in ("echo_origin", "silent")
    with pytest.raises(NtpError, match=message):
        sntp_offset("127.0.0.1", fake_ntp.port, timeout=0.3 if never_answered else 30)


async def test_ntp_drift_refuses_then_recovers(fake_ntp: Any) -> None:
    guard = ClockGuard(ClockPolicy(ntp_servers=(fake_ntp.address,), max_drift=1.0, ntp_timeout=30))
    fake_ntp.offset = 0.0
    await guard.check_ntp()
    guard.now()
    fake_ntp.offset = 5.0  # our clock is 5 s slow
    await guard.check_ntp()
    with pytest.raises(Unavailable, match="off NTP time"):
        guard.now()
    fake_ntp.offset = 0.1
    await guard.check_ntp()
    guard.now()
    assert guard.status()["ntp_offset"] == pytest.approx(0.1, abs=0.2)


async def test_start_runs_a_first_round_before_serving(fake_ntp: Any) -> None:
    fake_ntp.offset = -30.0
    guard = ClockGuard(ClockPolicy(ntp_servers=(fake_ntp.address,), ntp_timeout=30))
    await guard.start()
    try:
        with pytest.raises(Unavailable):
            guard.now()
        assert fake_ntp.queries >= 1
    finally:
        await guard.close()


async def test_unreachable_servers_fall_back_unless_ntp_is_required(fake_ntp: Any) -> None:
    fake_ntp.silent = True
    lenient = ClockGuard(ClockPolicy(ntp_servers=(fake_ntp.address,), ntp_timeout=0.2))
    await lenient.check_ntp()
    lenient.now()
    assert lenient.status()["ntp_errors"]
    strict = ClockGuard(
        ClockPolicy(ntp_servers=(fake_ntp.address,), ntp_timeout=0.2, require_ntp=True)
    )
    await strict.check_ntp()
    with pytest.raises(Unavailable, match="no configured NTP server answered"):
        strict.now()


async def test_a_step_is_lifted_by_an_agreeing_ntp_round(fake_ntp: Any) -> None:
    clocks = FakeClocks()
    import time

    clocks.wall = time.time()
    guard = ClockGuard(
        ClockPolicy(ntp_servers=(fake_ntp.address,), ntp_timeout=30),
        clock=clocks.time,
        monotonic=clocks.monotonic,
    )
    clocks.wall += 0.0
    clocks.mono -= 10  # the wall clock "stepped" relative to the monotonic one
    with pytest.raises(Unavailable):
        guard.now()
    await guard.check_ntp()  # NTP agrees with the wall clock: trusted again
    assert guard.now() == clocks.wall


def test_median_of_several_servers() -> None:
    guard = ClockGuard(ClockPolicy(ntp_servers=("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")))
    guard.apply_ntp([0.1, 9.0, -0.2], [])  # one falseticker is outvoted
    guard.now()
    guard.apply_ntp([3.0, 9.0, -0.2], [])
    with pytest.raises(Unavailable):
        guard.now()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pool.example", ("pool.example", 123)),
        ("127.0.0.1:1234", ("127.0.0.1", 1234)),
        ("[::1]:99", ("::1", 99)),
        ("[::1]", ("::1", 123)),
    ],
)
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["", "host:port", "host:0", "[::1", "host:70000"])
def test_parse_server_refuses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_server(text)


def test_bad_policy_values() -> None:
    with pytest.raises(ConfigError):
        ClockPolicy(max_drift=0)
    with pytest.raises(ConfigError):
        ClockPolicy(ntp_servers=("bad:port",))


def test_connection_refused_is_an_ntp_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NtpError, match="refused"):
        sntp_offset("127.0.0.1", port, timeout=30)
