"""A TUF repository that distributes this instance's trust material (protocols.md §10).

Built with python-tuf's Metadata API: one Ed25519 key per top-level role (threshold 1),
``consistent_snapshot: true``, and two targets — ``trusted_root.json`` (what sigstore-js 5 reads)
and ``signing_config.v0.2.json`` (which sigstore-python 4.5.1 additionally *requires*). Clients
bootstrap from ``1.root.json`` and then walk exactly the files of the TUF 1.0 client workflow:
``{N}.root.json`` until 404, ``timestamp.json``, ``{N}.snapshot.json``, ``{N}.targets.json``,
``targets/{sha256}.{name}``.

Versions only move forward and every version is written once (see :mod:`.store`), so several
processes publishing concurrently converge on one history. :meth:`TufRepository.refresh` re-signs
a role before it expires (the timestamp daily by default) and publishes new targets when the trust
material changes (key rotation).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

# python-tuf and securesystemslib re-export these names without __all__ (mypy: no re-export).
from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]

from keyless.errors import NotFound
from keyless.services.tuf.store import MetadataStore
from tuf.api.metadata import (  # type: ignore[attr-defined]
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

ROLES = ("root", "targets", "snapshot", "timestamp")
TARGET_NAMES = ("trusted_root.json", "signing_config.v0.2.json")


@dataclass(frozen=True)
class Expiry:
    """Lifetimes of the four roles (TUF spec §4.3 to §4.6 leave them to the repository)."""

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=90)
    snapshot: timedelta = timedelta(days=7)
    timestamp: timedelta = timedelta(days=1)

    def of(self, role: str) -> timedelta:
        value: timedelta = getattr(self, role)
        return value


def _signer(key: ed25519.Ed25519PrivateKey) -> CryptoSigner:
    return CryptoSigner(key, SSlibKey.from_crypto(key.public_key()))


class TufRepository:
    """Publishes and serves the repository's metadata from a :class:`MetadataStore`."""

    def __init__(
        self,
        store: MetadataStore,
        keys: Mapping[str, ed25519.Ed25519PrivateKey],
        *,
        expiry: Expiry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        missing = set(ROLES) - set(keys)
        if missing:
            raise ValueError(f"TUF keys missing for roles {sorted(missing)}")
        self._store = store
        self._signers = {role: _signer(keys[role]) for role in ROLES}
        self._expiry = expiry or Expiry()
        self._clock = clock
        self._latest: dict[str, int] = {}
        self._serializer = JSONSerializer(compact=False)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC).replace(microsecond=0)

    def _expires(self, role: str) -> datetime:
        return self._now() + self._expiry.of(role)

    def _needs_refresh(self, expires: datetime, role: str) -> bool:
        """Re-sign once less than half of the role's lifetime is left."""
        return expires - self._now() < self._expiry.of(role) / 2

    def _sign(self, signed: Any, role: str) -> bytes:
        md = Metadata(signed)
        md.sign(self._signers[role])
        return md.to_bytes(self._serializer)

    async def latest_version(self, role: str) -> int:
        """The highest published version of ``role`` (0 if none), probing past the cached one."""
        version = self._latest.get(role, 0)
        while await self._store.get(f"{role}/{version + 1}") is not None:
            version += 1
        self._latest[role] = version
        return version

    async def _load(self, role: str, version: int) -> Metadata[Any]:
        data = await self._store.get(f"{role}/{version}")
        if data is None:
            raise NotFound(f"{role} version {version} does not exist")
        return Metadata.from_bytes(data)

    async def _publish(self, role: str, version: int, signed: Any) -> bool:
        """Write version ``version`` of ``role``; False if another process already did."""
        data = self._sign(signed, role)
        existing = await self._store.put_if_absent(f"{role}/{version}", data)
        if existing is None:
            self._latest[role] = version
            return True
        return False

    async def _ensure_root(self) -> Metadata[Root]:
        version = await self.latest_version("root")
        if version:
            root: Metadata[Root] = await self._load("root", version)
            if not self._needs_refresh(root.signed.expires, "root"):
                return root
            root.signed.version = version + 1
            root.signed.expires = self._expires("root")
            await self._publish("root", version + 1, root.signed)
            return await self._load("root", await self.latest_version("root"))
        signed = Root(version=1, expires=self._expires("root"), consistent_snapshot=True)
        for role in ROLES:
            signed.add_key(self._signers[role].public_key, role)
        await self._publish("root", 1, signed)
        return await self._load("root", await self.latest_version("root"))

    async def publish(self, targets: Mapping[str, bytes]) -> int:
        """Make ``targets`` (name → content) current, re-signing whatever is due; returns the
        timestamp version now published. Idempotent: unchanged, unexpired metadata stays."""
        await self._ensure_root()
        for name, data in targets.items():
            digest = hashlib.sha256(data).hexdigest()
            await self._store.put_if_absent(f"target/{digest}.{name}", data)
        wanted = {
            name: TargetFile.from_data(name, data, ["sha256"]) for name, data in targets.items()
        }

        t_version = await self.latest_version("targets")
        targets_changed = True
        if t_version:
            current: Metadata[Targets] = await self._load("targets", t_version)
            targets_changed = current.signed.targets != wanted or self._needs_refresh(
                current.signed.expires, "targets"
            )
        if targets_changed:
            signed_t = Targets(version=t_version + 1, expires=self._expires("targets"))
            signed_t.targets = dict(wanted)
            await self._publish("targets", t_version + 1, signed_t)
            t_version = await self.latest_version("targets")

        s_version = await self.latest_version("snapshot")
        snapshot_changed = True
        if s_version:
            snap: Metadata[Snapshot] = await self._load("snapshot", s_version)
            snapshot_changed = snap.signed.meta["targets.json"].version != t_version or (
                self._needs_refresh(snap.signed.expires, "snapshot")
            )
        if snapshot_changed:
            signed_s = Snapshot(
                version=s_version + 1,
                expires=self._expires("snapshot"),
                meta={"targets.json": MetaFile(version=t_version)},
            )
            await self._publish("snapshot", s_version + 1, signed_s)
            s_version = await self.latest_version("snapshot")

        ts_version = await self.latest_version("timestamp")
        timestamp_changed = True
        if ts_version:
            ts: Metadata[Timestamp] = await self._load("timestamp", ts_version)
            timestamp_changed = ts.signed.snapshot_meta.version != s_version or (
                self._needs_refresh(ts.signed.expires, "timestamp")
            )
        if timestamp_changed:
            signed_ts = Timestamp(
                version=ts_version + 1,
                expires=self._expires("timestamp"),
                snapshot_meta=MetaFile(version=s_version),
            )
            await self._publish("timestamp", ts_version + 1, signed_ts)
            ts_version = await self.latest_version("timestamp")
        return ts_version

    async def refresh(self) -> int:
        """Re-sign expiring roles with the current targets (the periodic background job)."""
        version = await self.latest_version("targets")
        if not version:
            raise NotFound("the TUF repository has not been published yet")
        current: Metadata[Targets] = await self._load("targets", version)
        contents: dict[str, bytes] = {}
        for name, target in current.signed.targets.items():
            data = await self._store.get(f"target/{target.hashes['sha256']}.{name}")
            if data is None:
                raise NotFound(f"target {name} of targets version {version} is missing")
            contents[name] = data
        return await self.publish(contents)

    async def root_json(self, version: int | None = None) -> bytes:
        """``{N}.root.json`` (or the latest when ``version`` is None): the bootstrap root."""
        number = version if version is not None else await self.latest_version("root")
        data = await self._store.get(f"root/{number}")
        if data is None:
            raise NotFound(f"{number}.root.json does not exist")
        return data

    async def metadata(self, role: str, version: int | None) -> bytes:
        """A versioned (consistent-snapshot) or latest metadata file of a non-root role."""
        if role not in ROLES:
            raise NotFound(f"no TUF role {role!r}")
        number = version if version is not None else await self.latest_version(role)
        data = await self._store.get(f"{role}/{number}")
        if data is None:
            raise NotFound(f"{number}.{role}.json does not exist")
        return data

    async def target(self, digest: str, name: str) -> bytes:
        """A target file by its consistent-snapshot name ``{sha256}.{name}``."""
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise NotFound(f"no target {digest}.{name}")
        data = await self._store.get(f"target/{digest}.{name}")
        if data is None:
            raise NotFound(f"no target {digest}.{name}")
        return data
