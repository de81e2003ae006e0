"""First-start initialisation and reuse of a stack's state (contracts.md §2).

``build_stack(settings)`` is what ``keyless serve`` runs before serving:

1. create the data directory and take its lock (:mod:`keyless.server.datadir`): exclusive for the
   process lifetime on SQLite (with the database file's lock when it lives elsewhere), only
   around initialisation on PostgreSQL;
2. write the documented config file on first start
   (:func:`keyless.server.config_template.render_config`);
3. open the store and pick where secrets live (:mod:`keyless.server.secrets`: files on SQLite,
   the shared database on PostgreSQL so that every process uses the same keys), and load the
   key-encryption key that wraps every private key kept in the database
   (:mod:`keyless.server.kek`; required on PostgreSQL, ``DIR/keys/kek`` on SQLite);
4. build each service through :mod:`keyless.server.wiring`, which creates its keys and
   certificates with the service's own helpers on first start and reloads them afterwards;
5. describe the instance's public trust material and publish it through TUF.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from keyless.server import kek
from keyless.server.config import Settings
from keyless.server.config_template import render_config
from keyless.server.datadir import DataDirLock, database_lock, secure_data_dir
from keyless.server.secrets import FileSecrets, Secrets, SharedSecrets
from keyless.server.stack import Component, Stack
from keyless.server.trust import TrustMaterial
from keyless.storage.seam import NEVER, KeyValue

logger = logging.getLogger(__name__)


def write_config_if_absent(settings: Settings, explicit: frozenset[str]) -> Path | None:
    """Write ``DIR/keyless.toml`` on first start; returns its path when it was written."""
    path = settings.default_config_file
    if settings.config_file is not None or path.exists():
        return None
    tmp = path.with_name(path.name + ".tmp")
    # 0600 from the start: the file may name a database URL with its password
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(render_config(settings, explicit))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


#: where the public URL of the previous start is remembered (the store's key-value table)
URL_NAMESPACE, URL_KEY = "stack", "public-url"


async def public_url_change(settings: Settings, kv: KeyValue) -> str | None:
    """A warning when the public URL differs from the previous start's, which it then replaces.

    The checkpoint origins (and so the Rekor v2 log IDs), the CA's and TSA's URLs and the OIDC
    issuer all derive from the public URL: after a change, clients need the new trust config,
    and bundles signed before verify only against the old one. A derived default URL follows
    ``--port``, so this is easy to do by accident (``make run PORT=…`` on an existing data dir).
    """
    current = settings.public_url.encode()
    previous = await kv.put_if_absent(URL_NAMESPACE, URL_KEY, current, NEVER)
    if previous is None or previous == current:
        return None
    await kv.delete(URL_NAMESPACE, URL_KEY)
    await kv.put_if_absent(URL_NAMESPACE, URL_KEY, current, NEVER)
    old = previous.decode("utf-8", errors="replace")
    return (
        f"the public URL changed from {old} to {settings.public_url}: log names and IDs, the "
        f"CA, TSA and OIDC issuer URLs now derive from the new one, so clients need the new "
        f"trust config and bundles signed before verify only with one fetched from {old}; "
        f"start with --public-url {old} to keep the old identity"
    )


#: how long a PostgreSQL ``serve`` waits for another process's first-start initialisation of a
#: shared data directory (seconds; it takes one or two) before giving up with a message
INIT_LOCK_TIMEOUT = 60.0


def _sqlite_lock(settings: Settings) -> DataDirLock | None:
    """The lock of the SQLite database file when it is not the data directory's own."""
    if not settings.database_url.startswith("sqlite:"):
        return None
    from keyless.storage.sqlite import database_path

    return database_lock(database_path(settings.database_url), settings.data_dir)


def claim_data_dir(settings: Settings) -> list[DataDirLock]:
    """Take the process-lifetime locks of a SQLite instance and clear a killed predecessor's
    half-written files; nothing on PostgreSQL (several processes share its database).

    ``keyless serve`` holds them for its lifetime; with ``--workers N`` the supervisor does, on
    behalf of its workers (which inherit the locked files, :mod:`keyless.server.workers`).
    Raises :class:`ConfigError` naming the owner when another process holds them.
    """
    if settings.is_postgres:
        return []
    secure_data_dir(settings.data_dir)
    held = [DataDirLock(settings.data_dir)]
    held[0].acquire(wait=False)
    try:
        database = _sqlite_lock(settings)
        if database is not None:
            database.acquire(wait=False)
            held.append(database)
        from keyless.storage.files import clear_temporaries

        clear_temporaries(settings.data_dir / "logs")  # a killed predecessor's half-writes
    except BaseException:
        release(held)
        raise
    return held


def release(locks: list[DataDirLock]) -> None:
    """Give up the locks of :func:`claim_data_dir` (idempotent)."""
    for lock in reversed(locks):
        lock.release()


async def build_stack(
    settings: Settings, explicit: frozenset[str] = frozenset(), *, claimed: bool = False
) -> Stack:
    """Initialise (first start) or reopen (later starts) everything under ``settings``.

    ``claimed``: the caller already holds :func:`claim_data_dir` (a ``--workers`` supervisor
    and its workers); otherwise the stack claims the data directory itself and gives it up
    among its cleanups.
    """
    from keyless.server import wiring, wiring_context

    kek_file = kek.kek_path(settings.kek_file, settings.data_dir, shared=settings.is_postgres)
    secure_data_dir(settings.data_dir)
    lock = DataDirLock(settings.data_dir)
    cleanups: list[Callable[[], Awaitable[None]]] = []

    try:
        if settings.is_postgres:
            # Several processes may share the database (and even the directory): serialise only
            # the first-start creation of files; keys are coordinated through the database.
            lock.acquire(wait=True, timeout=INIT_LOCK_TIMEOUT)
        elif not claimed:
            held = claim_data_dir(settings)

            async def release_held() -> None:
                release(held)

            cleanups.append(release_held)
        written = write_config_if_absent(settings, explicit)
        if written is not None:
            logger.info("first start: wrote %s", written, extra={"config": str(written)})

        sealer = kek.load_or_create(kek_file)
        storage = await wiring_context.open_store(settings)
        cleanups.append(storage.close)
        warnings: list[str] = []
        changed = await public_url_change(settings, storage.kv)
        if changed is not None:
            logger.warning("%s", changed)
            warnings.append(changed)
        secrets: Secrets
        if settings.is_postgres:
            secrets = SharedSecrets(storage.kv, sealer)
        else:
            secrets = FileSecrets(settings.data_dir / "keys")

        components: list[Component] = []
        trust = TrustMaterial()
        after_start: list[Callable[[], Awaitable[None]]] = []
        gauges: dict[str, tuple[str, Callable[[], dict[str, float]]]] = {}
        context = wiring_context.WiringContext(
            settings=settings,
            storage=storage,
            secrets=secrets,
            sealer=sealer,
            components=components,
            after_start=after_start,
            gauges=gauges,
        )
        for step in wiring.SERVICE_STEPS:
            await step(context)
        trust = context.trust()
        await wiring.add_tuf(context, trust)
        if settings.is_postgres:
            lock.release()
        return Stack(
            settings=settings,
            components=components,
            trust=trust,
            after_start=after_start,
            cleanups=cleanups,
            gauges=gauges,
            warnings=warnings,
        )
    except BaseException:
        for cleanup in reversed(cleanups):
            await cleanup()
        lock.release()
        raise
