"""What the wiring steps share: the context they fill in, and the keys they obtain.

:class:`WiringContext` carries the settings, storage and secrets into every step of
:mod:`keyless.server.wiring` and collects what the steps produce (components, the public half of
the trust material). The key helpers obtain a service's keys from the stack's secrets, creating
them on first start.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyless.errors import ConfigError
from keyless.http.budget import ClientBudget
from keyless.keys import InMemorySigner, generate_key
from keyless.sealing import Sealer
from keyless.server.config import Settings
from keyless.server.secrets import FileSecrets, Secrets, pack_directory, unpack_directory
from keyless.server.stack import Component
from keyless.server.trust import (
    Authority,
    LogKey,
    ServiceUrl,
    TrustMaterial,
    Validity,
)
from keyless.storage import Storage, open_storage

if TYPE_CHECKING:  # the services are imported by their own step, when it runs

    from keyless.log import TransparencyLog
    from keyless.services.ctlog import CTLogService
    from keyless.services.oidc.service import OidcProvider
    from keyless.services.tlog.service import RekorV1Service, RekorV2Service

#: how far before its creation a key's published validity starts: covers client clock skew

__all__ = [
    "VALIDITY_MARGIN",
    "WiringContext",
    "ed25519_key",
    "material_dir",
    "open_store",
    "signer_key",
]

#: how far before its creation a key's published validity starts: covers client clock skew
#: (interop.md §5 item 11: services whose validFor.start is in the future are ignored)
VALIDITY_MARGIN = timedelta(days=1)


@dataclass
class WiringContext:
    """What the steps share while the stack is assembled."""

    settings: Settings
    storage: Storage
    secrets: Secrets
    #: wraps private keys the services keep in the database themselves (the OIDC key ring)
    sealer: Sealer
    components: list[Component]
    after_start: list[Callable[[], Awaitable[None]]]
    gauges: dict[str, tuple[str, Callable[[], dict[str, float]]]]
    authorities: list[Authority] = field(default_factory=list)
    #: the log engines /metrics reports on (tree size, checkpoint age)
    logs: list[TransparencyLog] = field(default_factory=list)
    tlogs: list[LogKey] = field(default_factory=list)
    ctlogs: list[LogKey] = field(default_factory=list)
    tsas: list[Authority] = field(default_factory=list)
    ca_urls: list[ServiceUrl] = field(default_factory=list)
    oidc_urls: list[ServiceUrl] = field(default_factory=list)
    rekor_urls: list[ServiceUrl] = field(default_factory=list)
    tsa_urls: list[ServiceUrl] = field(default_factory=list)
    #: services other steps need in-process (the CA logs to the CT log, trusts the OIDC issuer)
    oidc: OidcProvider | None = None
    ctlog: CTLogService | None = None
    #: ``(base URL, service)`` of every Rekor log and shard, for the explorer
    tlog_services: list[tuple[str, RekorV1Service | RekorV2Service]] = field(
        default_factory=list
    )

    @property
    def public_url(self) -> str:
        return self.settings.public_url

    def client_budget(self) -> ClientBudget:
        """A fresh per-client budget for one service (``[server] client_budget``)."""
        return ClientBudget.per_second(self.settings.client_budget)

    async def created_at(self, name: str) -> datetime:
        """When the material ``name`` was first created (stored with it, so it never moves)."""
        now = datetime.now(UTC).replace(microsecond=0)
        raw = await self.secrets.obtain(f"{name}.created", lambda: now.isoformat().encode())
        return datetime.fromisoformat(raw.decode())

    async def validity(self, name: str) -> Validity:
        """The published validity window of the material ``name``: open-ended, starting a day
        before it was created."""
        return Validity(start=await self.created_at(name) - VALIDITY_MARGIN)

    def trust(self) -> TrustMaterial:
        return TrustMaterial(
            certificate_authorities=tuple(self.authorities),
            tlogs=tuple(self.tlogs),
            ctlogs=tuple(self.ctlogs),
            timestamp_authorities=tuple(self.tsas),
            ca_urls=tuple(self.ca_urls),
            oidc_urls=tuple(self.oidc_urls),
            rekor_urls=tuple(self.rekor_urls),
            tsa_urls=tuple(self.tsa_urls),
        )


async def open_store(settings: Settings) -> Storage:
    """The storage (logs and side stores) at ``settings.database_url``."""
    return await open_storage(settings.database_url, data_dir=settings.data_dir)


def _new_key_pem(kind: str) -> bytes:
    """A new private key of ``kind`` (``ecdsa-p256``, ``ed25519``, …) as unencrypted PKCS#8 PEM."""
    return generate_key(kind).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


async def ed25519_key(ctx: WiringContext, name: str) -> ed25519.Ed25519PrivateKey:
    """The Ed25519 private key ``name``, generated on first use."""
    pem = await ctx.secrets.obtain(name, lambda: _new_key_pem("ed25519"))
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise TypeError(f"secret {name} is not an Ed25519 key")
    return key


async def signer_key(ctx: WiringContext, name: str, kind: str) -> InMemorySigner:
    """A service key (``ecdsa-p256``, ``ed25519``, …) kept in the stack's secrets."""
    pem = await ctx.secrets.obtain(name, lambda: _new_key_pem(kind))
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    ):
        raise ConfigError(f"secret {name} holds an unsupported key type")
    return InMemorySigner(key)


async def material_dir(
    ctx: WiringContext, name: str, create_in: Callable[[Path], object]
) -> Path:
    """A directory of key material made by a service's own helper (``create_in(dir)``).

    On the embedded default the helper works in ``DIR/keys/<name>`` directly (it loads what is
    there and creates what is missing). With shared secrets (PostgreSQL) the helper runs once in a
    scratch directory, the files are proposed as one blob, and every process unpacks the winning
    blob, so all of them serve with the same CA or TSA.
    """
    directory = ctx.settings.data_dir / "keys" / name
    if isinstance(ctx.secrets, FileSecrets):
        return directory

    def create() -> bytes:
        with tempfile.TemporaryDirectory() as scratch:
            create_in(Path(scratch))
            return pack_directory(Path(scratch))

    unpack_directory(await ctx.secrets.obtain(f"{name}.files", create), directory)
    return directory
