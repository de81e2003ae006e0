"""How each service is built, keyed and mounted into the stack (docs/internal-apis.md).

One async step per service. A step obtains the service's keys and certificates from
:class:`~keyless.server.secrets.Secrets` (creating them with the service's own helpers on first
start), constructs the service, appends a :class:`~keyless.server.app.Component` with its base path,
and records the public half of its trust material (CA chain, log key and ID, TSA chain, URLs).
The URL layout is fixed here, in one place:

=============  =====================  ==============================================
service        base URL               why (interop.md §5)
=============  =====================  ==============================================
CA             ``P``                  item 10: sigstore-python drops CA path prefixes
Rekor v1       ``P``                  signer name ``host:port`` ⊂ baseUrl (item 8)
Rekor v2       ``P/rekor``            origin ``host:port/rekor`` ⊂ baseUrl (items 8, 9)
CT log         ``P/ctlog``            its own prefix (contracts.md §2)
TSA            ``P/api/v1/timestamp`` item 10: the full endpoint in the signing config
OIDC           ``P/oidc``             issuer URL (contracts.md §3)
TUF            ``P/tuf``              protocols.md §10
=============  =====================  ==============================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from keyless.server.app import Component
from keyless.server.config import Settings
from keyless.server.secrets import Secrets
from keyless.server.trust import Authority, LogKey, ServiceUrl, TrustMaterial, Validity

#: how far before its creation a key's published validity starts: covers client clock skew
#: (interop.md §5 item 11: services whose validFor.start is in the future are ignored)
VALIDITY_MARGIN = timedelta(days=1)


@dataclass
class WiringContext:
    """What the steps share while the stack is assembled."""

    settings: Settings
    storage: Any
    secrets: Secrets
    components: list[Component]
    after_start: list[Callable[[], Awaitable[None]]]
    gauges: dict[str, tuple[str, Callable[[], dict[str, float]]]]
    authorities: list[Authority] = field(default_factory=list)
    tlogs: list[LogKey] = field(default_factory=list)
    ctlogs: list[LogKey] = field(default_factory=list)
    tsas: list[Authority] = field(default_factory=list)
    ca_urls: list[ServiceUrl] = field(default_factory=list)
    oidc_urls: list[ServiceUrl] = field(default_factory=list)
    rekor_urls: list[ServiceUrl] = field(default_factory=list)
    tsa_urls: list[ServiceUrl] = field(default_factory=list)

    @property
    def public_url(self) -> str:
        return self.settings.public_url

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


async def open_store(settings: Settings) -> Any:
    """The log engine's storage for ``settings.database_url``, or ``None`` while it is absent."""
    try:
        from keyless.storage import open_storage  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    return await open_storage(settings.database_url, data_dir=settings.data_dir)


def _ed25519_pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


async def ed25519_key(ctx: WiringContext, name: str) -> ed25519.Ed25519PrivateKey:
    """The Ed25519 private key ``name``, generated on first use."""
    pem = await ctx.secrets.obtain(name, _ed25519_pem)
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise TypeError(f"secret {name} is not an Ed25519 key")
    return key


async def add_tuf(ctx: WiringContext, trust: TrustMaterial) -> None:
    """Mount the TUF repository at ``P/tuf`` and publish the trust material as its targets."""
    import json

    from keyless.services.tuf import (
        Expiry,
        FileMetadataStore,
        KvMetadataStore,
        TufRepository,
        TufService,
    )
    from keyless.services.tuf.store import MetadataStore

    settings = ctx.settings
    roles = ("root", "targets", "snapshot", "timestamp")
    keys = {role: await ed25519_key(ctx, f"tuf/{role}.pem") for role in roles}
    store: MetadataStore
    if settings.is_postgres:
        store = KvMetadataStore(ctx.storage.kv)
    else:
        store = FileMetadataStore(settings.data_dir / "tuf")
    expiry = Expiry(
        root=timedelta(days=settings.tuf_root_days),
        targets=timedelta(days=settings.tuf_targets_days),
        snapshot=timedelta(days=settings.tuf_snapshot_days),
        timestamp=timedelta(days=settings.tuf_timestamp_days),
    )
    repository = TufRepository(store, keys, expiry=expiry)
    service = TufService(repository)
    targets = {
        "trusted_root.json": json.dumps(trust.trusted_root(), indent=2).encode(),
        "signing_config.v0.2.json": json.dumps(trust.signing_config(), indent=2).encode(),
    }

    async def publish() -> None:
        await repository.publish(targets)
        root = await repository.root_json(1)
        (settings.data_dir / "tuf-root.json").write_bytes(root)
        (settings.data_dir / "trusted_root.json").write_bytes(targets["trusted_root.json"])
        (settings.data_dir / "signing_config.v0.2.json").write_bytes(
            targets["signing_config.v0.2.json"]
        )

    ctx.after_start.append(publish)
    ctx.components.append(
        Component(
            "tuf",
            "/tuf",
            service.routes(),
            start=service.start,
            close=service.close,
            url=f"{ctx.public_url}/tuf",
        )
    )


#: the service steps, in mount order (more specific prefixes are independent of order because
#: every route is a full path; the CA and Rekor v1 share the root without overlapping)
SERVICE_STEPS: list[Callable[[WiringContext], Awaitable[None]]] = []
