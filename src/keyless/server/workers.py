"""``keyless serve --workers N``: N processes behind the one port (contracts.md §2).

The design is Tessera's "many frontends, one sequencer per log through the storage":

* A **supervisor** (the ``keyless serve`` process) takes the data directory's locks on SQLite
  (:func:`keyless.server.init.claim_data_dir`), runs the first-start initialisation once (keys,
  certificates, config file: :func:`keyless.server.init.build_stack`), prints the banner, binds
  the port (in its ``SO_REUSEPORT`` group, without listening) and starts N **workers**. It
  serves no request itself; it restarts a worker that dies and stops them all, gracefully, on
  SIGTERM/SIGINT.
* Every worker is a whole stack: the same app, the same services, over the same store, accepting
  connections on the one port from a listening socket of its own (``SO_REUSEPORT``: the kernel
  spreads new connections over the workers' sockets, where one shared socket would let the
  worker that wakes first accept a whole burst of keep-alive connections). All the CPU-heavy
  admission work (parsing, certificate and signature checks, canonicalisation, token and CSR
  checks, TSA signing) runs in whichever worker took the connection.
* Sequencing stays once per log because it goes **through the storage**: each worker batches
  the entries it admitted and sequences the batch inside the storage's exclusive session
  (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``pg_advisory_xact_lock``), which first reloads the
  right edge if another worker moved the head (:meth:`keyless.log.sequencer.Sequencer.sync`).
  So there is one tree, one checkpoint history, no fork; an entry is acknowledged only after its
  batch committed (durable) under a signed checkpoint; resubmission is answered from the shared
  dedup index whichever worker gets it; ``kill -9`` of any process loses only unacknowledged
  work. Everything else a worker must agree on (the token-replay guard, OIDC codes and sessions,
  TUF versions, search index) already lives in the store, as for several ``keyless serve``
  processes sharing PostgreSQL.
* Workers share the supervisor's lock files (inherited descriptors: ``flock`` locks belong to
  the open file, not the process), so the data directory stays locked until the last of them
  exits; they follow a supervisor that dies (``PR_SET_PDEATHSIG``, graceful SIGTERM).

Per-process state: the per-client budgets (``[server] client_budget``) and overload bounds are
kept by each worker, so one client's budget is per worker that serves it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from keyless.errors import ConfigError
from keyless.http import METRICS_DIR_ENV
from keyless.server.config import Settings

logger = logging.getLogger(__name__)

#: a worker that had started and dies is restarted, unless this many died within the window
RESTART_LIMIT, RESTART_WINDOW = 5, 60.0


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process is started with (pickled to it)."""

    settings: Settings
    explicit: frozenset[str]
    number: int
    parent: int  # the supervisor's pid


@contextlib.contextmanager
def shared_metrics() -> Iterator[Path]:
    """A fresh directory where every worker keeps its counters, so that any worker's
    ``/metrics`` sums them (:mod:`keyless.http.metrics`); removed at the end.

    Must be entered before anything imports ``prometheus_client`` (it picks where counters
    live once, at import) — in this process, whose workers inherit its modules by fork.
    """
    import shutil
    import tempfile

    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the metrics directory was set")
    directory = Path(tempfile.mkdtemp(prefix="keyless-metrics-"))
    os.environ[METRICS_DIR_ENV] = str(directory)
    try:
        yield directory
    finally:
        os.environ.pop(METRICS_DIR_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


def _port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` in the port's ``SO_REUSEPORT`` group (the address
    family chosen as uvicorn chooses it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def reserve_port(settings: Settings) -> socket.socket:
    """The supervisor's hold on the port: bound in the ``SO_REUSEPORT`` group but never
    listening, so it takes no connection while nothing outside the group can bind the port."""
    return _port_socket(settings.host, settings.port)


def listener(host: str, port: int) -> socket.socket:
    """A worker's own listening socket on the shared port. With one listening socket per worker
    the kernel spreads new connections over the workers (by a hash of the connection); one
    socket shared by all would let whichever worker wakes first accept a whole burst."""
    sock = _port_socket(host, port)
    sock.listen(2048)
    return sock


class Supervisor:
    """Starts, watches and stops the worker processes of one ``keyless serve``."""

    def __init__(
        self,
        settings: Settings,
        explicit: frozenset[str],
        workers: int,
        sock: socket.socket,
    ) -> None:
        if workers < 1:
            raise ConfigError("--workers must be at least 1")
        self._settings = settings
        self._explicit = explicit
        self._count = workers
        self._sock = sock
        self._port: int = sock.getsockname()[1]  # the one chosen when --port is 0
        # fork: a worker starts with everything the supervisor imported and initialised, in a
        # fraction of a spawn's time, and inherits the locked files as they are
        # (the supervisor runs no thread and no event loop when it forks)
        self._context = get_context("fork")
        self._procs: dict[int, BaseProcess] = {}
        self._ready: dict[int, Connection] = {}
        self._serving: set[int] = set()
        self._deaths: list[float] = []
        self._stopping = False
        self._wake_r, self._wake_w = socket.socketpair()

    def _start_worker(self, number: int) -> None:
        import threading

        if threading.active_count() > 1:  # a fork copies only this thread: say what was lost
            names = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
            logger.warning("forking a worker while threads run: %s", ", ".join(names))
        spec = WorkerSpec(self._settings, self._explicit, number, os.getpid())
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker_main,
            args=(spec, self._port, send, (self._sock, self._wake_r, self._wake_w)),
            name=f"keyless-worker-{number}",
            daemon=False,
        )
        process.start()
        send.close()
        self._procs[number] = process
        self._ready[number] = receive

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        self._stopping = True
        self._wake_w.send(b"\0")

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (exit status 0) or until workers cannot run (1)."""
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            for number in range(1, self._count + 1):
                self._start_worker(number)
            return self._watch()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._wake_r.close()
            self._wake_w.close()

    def _watch(self) -> int:
        while not self._stopping:
            sentinels = {p.sentinel: n for n, p in self._procs.items()}
            readies = {id(c): n for n, c in self._ready.items()}
            waitables: list[Any] = [self._wake_r, *sentinels, *self._ready.values()]
            for item in wait(waitables):
                if item is self._wake_r:
                    self._wake_r.recv(64)
                elif isinstance(item, int):
                    if not self._stopping and not self._exited(sentinels[item]):
                        return 1
                elif isinstance(item, Connection):
                    self._started(readies[id(item)], item)
        return 0

    def _started(self, number: int, connection: Connection) -> None:
        if self._ready.get(number) is not connection:
            return  # its worker's exit was handled first
        del self._ready[number]
        try:
            connection.recv()
        except EOFError:  # it died before it was ready: its sentinel says so next
            return
        finally:
            connection.close()
        self._serving.add(number)
        logger.info(
            "worker %d serving", number, extra={"worker": number, "pid": self._procs[number].pid}
        )
        if len(self._serving) == self._count:
            logger.info("all %d workers serving", self._count, extra={"workers": self._count})

    def _exited(self, number: int) -> bool:
        """Handle a worker's exit; False when the stack cannot go on."""
        import time

        process = self._procs.pop(number)
        process.join()
        ready = self._ready.pop(number, None)
        if ready is not None:
            ready.close()
        code = process.exitcode
        if number not in self._serving:
            logger.error("worker %d could not start (exit status %s); stopping", number, code)
            return False
        self._serving.discard(number)
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < RESTART_WINDOW] + [now]
        if len(self._deaths) > RESTART_LIMIT:
            logger.error(
                "%d workers died within %.0f s; stopping", len(self._deaths), RESTART_WINDOW
            )
            return False
        logger.warning(
            "worker %d (pid %s) exited with status %s; starting a new one",
            number, process.pid, code, extra={"worker": number},
        )
        self._start_worker(number)
        return True

    def _stop_all(self) -> None:
        """SIGTERM every worker (each drains its in-flight writes), then wait for them all."""
        for process in self._procs.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        grace = self._settings.shutdown_grace + 30.0
        for process in self._procs.values():
            process.join(grace)
            if process.is_alive():
                logger.error("worker %s did not stop; killing it", process.name)
                process.kill()
                process.join()
        self._procs.clear()
        for connection in self._ready.values():
            connection.close()
        self._ready.clear()


def _follow_parent(parent: int) -> None:
    """Get SIGTERM when the supervisor dies (Linux), and stop now if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        raise SystemExit(1)


def worker_main(
    spec: WorkerSpec,
    port: int,
    ready: Connection,
    supervisor_only: Sequence[socket.socket],
) -> None:
    """A worker process (forked): build the stack over the shared store and serve ``port``
    from a listening socket of its own (:func:`listener`).

    The locked files of the data directory are inherited and held, never used: it stays locked
    while a worker lives. ``supervisor_only`` are the supervisor's descriptors to close here.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the supervisor's handlers
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for item in supervisor_only:
        item.close()
    _follow_parent(spec.parent)
    from keyless.http.logs import configure_logging

    settings = spec.settings
    configure_logging(settings.log_level, settings.log_format)
    try:
        from keyless.server.serving import run

        code = run(_serve(spec, port, ready))
    except ConfigError as exc:
        logger.error("worker %d: %s", spec.number, exc)
        code = 2
    except KeyboardInterrupt:
        code = 0
    raise SystemExit(code)


async def _serve(spec: WorkerSpec, port: int, ready: Connection) -> int:
    from keyless.server.app import create_app
    from keyless.server.init import build_stack
    from keyless.server.serving import GracefulServer, uvicorn_config
    from keyless.server.stack import Stack

    stack = await build_stack(spec.settings, spec.explicit, claimed=True)

    async def prebuilt(_settings: Settings) -> Stack:
        return stack

    def started() -> None:
        ready.send(spec.number)
        ready.close()

    app = create_app(spec.settings, builder=prebuilt)
    server = GracefulServer(uvicorn_config(app, spec.settings), on_started=started)
    with listener(spec.settings.host, port) as sock:
        await server.serve(sockets=[sock])
    return 0 if server.started else 1
