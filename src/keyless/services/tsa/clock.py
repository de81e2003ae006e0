"""The clock-drift guard: the TSA refuses to sign a time it cannot trust.

A timestamp is only as good as the clock behind it, and a wrong genTime is worse than none (it
can back-date a signature past a certificate's validity). The Go TSA only records a metric; this
guard makes the TSA answer 503 + Retry-After instead (issue 6, item 3). Two independent checks:

* **Offline step check.** ``time.time()`` (CLOCK_REALTIME) and ``time.monotonic()``
  (CLOCK_MONOTONIC) are slewed alike by NTP frequency corrections but only the wall clock is
  *stepped* (settimeofday, a VM resume, an operator). Their difference is fixed at start; a change
  larger than ``max_jump`` means the wall clock jumped, and the TSA refuses until an NTP round
  confirms the clock (or, with no NTP server configured, until ``jump_hold`` seconds have passed).
  This check runs on every request and costs two clock reads.
* **NTP drift check.** Every ``check_interval`` seconds an SNTP query (RFC 4330 §5; RFC 5905
  §8 on-wire protocol, offset θ = ((T2 - T1) + (T3 - T4)) / 2) goes to each configured server;
  if the median offset of the servers that answered exceeds ``max_drift`` the TSA refuses until a
  later round agrees again. Servers that do not answer are skipped (``require_ntp`` makes "none
  answered" itself a refusal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import statistics
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from keyless.errors import ConfigError, Unavailable

logger = logging.getLogger(__name__)

#: Seconds between the NTP era origin (1900-01-01) and the Unix epoch (RFC 5905 §6).
NTP_UNIX_DELTA = 2_208_988_800
NTP_PORT = 123
_PACKET = struct.Struct("!BBbb11I")  # 48 bytes: LI/VN/Mode, stratum, poll, precision, 11 words


class NtpError(Exception):
    """An SNTP exchange failed or its answer cannot be used (RFC 4330 §5 sanity checks)."""


@dataclass(frozen=True)
class ClockPolicy:
    """When the TSA's clock counts as trustworthy (all durations in seconds)."""

    ntp_servers: tuple[str, ...] = ()  # "host", "host:port" or "[v6]:port"; none by default
    max_drift: float = 0.5  # |median NTP offset| allowed; + 0.5 s rounding = the 1 s accuracy
    max_jump: float = 1.0  # wall-vs-monotonic step that marks the clock untrusted
    check_interval: float = 60.0
    ntp_timeout: float = 1.0
    require_ntp: bool = False  # refuse when no configured NTP server answers
    jump_hold: float = 60.0  # refuse this long after a step unless NTP confirms sooner
    retry_after: float = 5.0

    def __post_init__(self) -> None:
        for name in ("max_drift", "max_jump", "check_interval", "ntp_timeout", "retry_after"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"clock policy {name} must be positive")
        for server in self.ntp_servers:
            parse_server(server)


def parse_server(server: str) -> tuple[str, int]:
    """Split ``host[:port]`` / ``[v6]:port`` (default port 123)."""
    text = server.strip()
    if not text:
        raise ConfigError("empty NTP server name")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"bad NTP server {server!r}")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    try:
        port = int(port_text) if port_text else NTP_PORT
    except ValueError as exc:
        raise ConfigError(f"bad NTP server port in {server!r}") from exc
    if not host or not 0 < port < 65536:
        raise ConfigError(f"bad NTP server {server!r}")
    return host, port


def _ntp_to_unix(seconds: int, fraction: int) -> float:
    return seconds - NTP_UNIX_DELTA + fraction / 2**32


def sntp_offset(
    host: str, port: int = NTP_PORT, *, timeout: float = 1.0, clock: Callable[[], float] = time.time
) -> float:
    """The offset (server - local, seconds) measured by one SNTP exchange (RFC 4330 §5).

    The request's transmit timestamp is 64 random bits (as RFC 9109 §3 / data minimisation
    suggest) and the reply must echo it as its originate timestamp, so a stray or spoofed datagram
    is not taken as an answer. Replies that are unsynchronised (LI = 3), kiss-o'-death (stratum 0)
    or carry a zero transmit time are refused.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
            cookie = os.urandom(8)
            request = bytes([0x23]) + bytes(39) + cookie  # LI 0, VN 4, mode 3 (client)
            t1 = clock()
            sock.send(request)
            deadline = time.monotonic() + timeout
            while True:
                reply = sock.recv(512)
                t4 = clock()
                if len(reply) >= 48 and reply[24:32] == cookie:
                    break
                if time.monotonic() > deadline:
                    raise NtpError(f"no matching reply from {host}:{port}")
        except OSError as exc:
            raise NtpError(f"NTP query to {host}:{port} failed: {exc}") from exc
    first, stratum, _poll, _precision, *words = _PACKET.unpack_from(reply)
    leap, version, mode = first >> 6, (first >> 3) & 7, first & 7
    if mode != 4 or version not in (3, 4):
        raise NtpError(f"{host}:{port} did not answer as an NTP server (mode {mode})")
    if leap == 3 or not 1 <= stratum <= 15:
        raise NtpError(f"{host}:{port} is not synchronised (leap {leap}, stratum {stratum})")
    t2 = _ntp_to_unix(words[7], words[8])  # receive timestamp
    if words[9] == 0 and words[10] == 0:
        raise NtpError(f"{host}:{port} sent no transmit timestamp")
    t3 = _ntp_to_unix(words[9], words[10])  # transmit timestamp
    return ((t2 - t1) + (t3 - t4)) / 2


SntpQuery = Callable[..., float]


@dataclass
class _State:
    baseline: float  # wall - monotonic when last trusted
    reason: str | None = None  # why the clock is untrusted now; None = trusted
    jumped_at: float | None = None  # monotonic time of the last detected step
    drift: float | None = None  # last NTP median offset
    last_ntp: float | None = None  # monotonic time of the last NTP round with an answer
    errors: list[str] = field(default_factory=list)


class ClockGuard:
    """Answers "what time is it?" only when the clock is trustworthy (see module docstring)."""

    def __init__(
        self,
        policy: ClockPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sntp: SntpQuery = sntp_offset,
    ) -> None:
        self.policy = policy or ClockPolicy()
        self._clock = clock
        self._monotonic = monotonic
        self._sntp = sntp
        self._servers = [parse_server(s) for s in self.policy.ntp_servers]
        self._state = _State(baseline=clock() - monotonic())
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ---- hot path ----------------------------------------------------------------------

    def now(self) -> float:
        """The current wall-clock time, or :class:`Unavailable` (503) if it is not trusted."""
        wall = self._clock()
        mono = self._monotonic()
        state = self._state
        if state.reason is None:
            step = wall - mono - state.baseline
            if -self.policy.max_jump <= step <= self.policy.max_jump:
                return wall
            self._step_detected(step, mono)
        elif state.jumped_at is not None and mono - state.jumped_at >= self.policy.jump_hold:
            logger.warning("accepting the stepped wall clock after %.0f s", self.policy.jump_hold)
            self._trust(wall - mono)
            return wall
        raise Unavailable(
            f"the TSA clock is not trustworthy: {state.reason}",
            retry_after=self.policy.retry_after,
        )

    # ---- state changes -------------------------------------------------------------------

    def _step_detected(self, step: float, mono: float) -> None:
        self._state.reason = f"the wall clock stepped by {step:+.3f} s"
        self._state.jumped_at = mono
        logger.error("TSA refuses timestamps: %s", self._state.reason)
        self._wake.set()  # confirm with NTP at once

    def _trust(self, baseline: float) -> None:
        if self._state.reason is not None:
            logger.warning("TSA clock trusted again (was: %s)", self._state.reason)
        self._state.baseline = baseline
        self._state.reason = None
        self._state.jumped_at = None

    @property
    def trusted(self) -> bool:
        """Whether timestamps are being issued right now."""
        return self._state.reason is None

    def status(self) -> dict[str, object]:
        """A small report for health/metrics endpoints."""
        s = self._state
        return {
            "trusted": s.reason is None,
            "reason": s.reason,
            "ntp_offset": s.drift,
            "ntp_errors": list(s.errors),
        }

    # ---- NTP -----------------------------------------------------------------------------

    def _query_all(self) -> tuple[list[float], list[str]]:
        offsets: list[float] = []
        errors: list[str] = []
        for host, port in self._servers:
            try:
                offsets.append(
                    self._sntp(host, port, timeout=self.policy.ntp_timeout, clock=self._clock)
                )
            except NtpError as exc:
                errors.append(str(exc))
        return offsets, errors

    async def check_ntp(self) -> None:
        """One NTP round (in a worker thread); updates whether the clock is trusted."""
        if not self._servers:
            return
        offsets, errors = await asyncio.to_thread(self._query_all)
        self.apply_ntp(offsets, errors)

    def apply_ntp(self, offsets: Sequence[float], errors: Sequence[str]) -> None:
        """Decide trust from one round's offsets (median, RFC 5905 §11.2-style combining)."""
        state = self._state
        state.errors = list(errors)
        if not offsets:
            if self.policy.require_ntp:
                state.reason = "no configured NTP server answered: " + "; ".join(errors)
                logger.error("TSA refuses timestamps: %s", state.reason)
            return
        drift = statistics.median(offsets)
        state.drift = drift
        state.last_ntp = self._monotonic()
        if abs(drift) > self.policy.max_drift:
            state.reason = (
                f"the clock is {-drift:+.3f} s off NTP time (allowed {self.policy.max_drift} s)"
            )
            state.jumped_at = None  # an NTP verdict, not a step: only NTP may lift it
            logger.error("TSA refuses timestamps: %s", state.reason)
            return
        self._trust(self._clock() - self._monotonic())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.policy.check_interval)
            self._wake.clear()
            try:
                await self.check_ntp()
            except Exception:  # keep guarding; a broken round must not stop the loop
                logger.exception("NTP check failed")

    async def start(self) -> None:
        """Run the first NTP round now (so a drifted clock never signs) and then periodically."""
        if not self._servers or self._task is not None:
            return
        self._wake = asyncio.Event()
        await self.check_ntp()
        self._task = asyncio.create_task(self._run(), name="tsa-ntp-guard")

    async def close(self) -> None:
        """Stop the background NTP checks."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
