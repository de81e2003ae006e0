"""How each service is built, keyed and mounted into the stack (docs/internal-apis.md).

One async step per service. A step obtains the service's keys and certificates from
:class:`~keyless.server.secrets.Secrets` (creating them with the service's own helpers on first
start), constructs the service, appends a :class:`~keyless.server.stack.Component` with its base
path, and records the public half of its trust material (CA chain, log key and ID, TSA chain, URLs).
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
Explorer       ``P/``, ``P/explorer``  HTML for people (issue #18)
=============  =====================  ==============================================
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ed25519

from keyless.errors import ConfigError
from keyless.http.readings import Counted
from keyless.localfiles import write_file_atomically
from keyless.server.config import Settings
from keyless.server.stack import Component
from keyless.server.trust import (
    Authority,
    LogKey,
    ServiceUrl,
    TrustMaterial,
    Validity,
    note_key_id,
    spki_key_id,
)
from keyless.server.wiring_context import (
    VALIDITY_MARGIN,
    WiringContext,
    ed25519_key,
    material_dir,
    signer_key,
)

if TYPE_CHECKING:  # the services are imported by their own step, when it runs

    from keyless.log import TransparencyLog
    from keyless.services.ca.authority import CAMaterial
    from keyless.services.tlog.identities import TrustedIssuers
    from keyless.services.tlog.service import RekorV1Service, RekorV2Service

async def add_tuf(ctx: WiringContext, trust: TrustMaterial) -> None:
    """Mount the TUF repository at ``P/tuf`` and publish the trust material as its targets."""

    from keyless.services.tuf import (
        Expiry,
        FileMetadataStore,
        KvMetadataStore,
        TufRepository,
        TufService,
    )
    from keyless.services.tuf.routes import routes as tuf_routes
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
    if settings.witnessing.enabled:  # docs/witnessing.md: TUF users get the policy too
        from keyless.server.witnessing import POLICY_TARGET, instance_policy, policy_routes

        policy = instance_policy(settings.witnessing, ctx.tlogs)
        targets[POLICY_TARGET] = policy.encode()
        ctx.components.append(Component("witness-policy", "", policy_routes(policy)))

    async def publish() -> None:
        await repository.publish(targets)
        root = await repository.root_json(1)
        write_file_atomically(settings.data_dir / "tuf-root.json", root)
        for name in ("trusted_root.json", "signing_config.v0.2.json"):
            write_file_atomically(settings.data_dir / name, targets[name])

    ctx.after_start.append(publish)
    ctx.components.append(
        Component(
            "tuf",
            "/tuf",
            tuf_routes(service),
            start=service.start,
            close=service.close,
            url=f"{ctx.public_url}/tuf",
        )
    )


def _engine_lifecycle(
    engine: TransparencyLog, service: RekorV1Service | RekorV2Service | None
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """Start the log engine before its personality (if it has a lifecycle), close it after (so
    the batch in flight is integrated before the process exits)."""

    async def start() -> None:
        await engine.start()
        if service is not None:
            await service.start()

    async def close() -> None:
        try:
            if service is not None:
                await service.close()
        finally:
            await engine.close()

    return start, close


#: one dummy entry sequenced when a log is created, so that no real entry has index 0 and no
#: proof is over a 1-leaf tree (interop.md §5 item 1: sigstore-js drops zero values)
SEED = b"keyless: this log starts with one placeholder entry (interop.md, gotcha 1)"


def _watch_log(ctx: WiringContext, engine: TransparencyLog) -> None:
    """Report ``engine``'s tree size and checkpoint age on /metrics (as this process saw them)."""
    ctx.logs.append(engine)
    logs = ctx.logs

    def sizes() -> dict[str, float]:
        return {log.name: float(head.size) for log in logs
                if (head := log.last_seen_head()) is not None}

    def ages() -> dict[str, float]:
        now = time.time()
        return {log.name: max(0.0, now - log.head_changed_at) for log in logs
                if log.head_changed_at is not None}

    ctx.gauges["keyless_log_tree_size"] = (
        "Entries in each transparency log (the newest checkpoint this process has seen).", sizes)
    ctx.gauges["keyless_log_checkpoint_age_seconds"] = (
        "Seconds since each log's newest checkpoint was first seen by this process (grows while "
        "the log takes no entries).", ages)


async def add_oidc(ctx: WiringContext) -> None:
    """The embedded OpenID Connect provider at ``P/oidc`` (contracts.md §3)."""
    from keyless.services.oidc.accounts import OidcUser, hash_secret
    from keyless.services.oidc.keyring import OidcKeyRing
    from keyless.services.oidc.routes import routes as oidc_routes
    from keyless.services.oidc.service import OidcProvider

    totp = ctx.settings.oidc_totp_secrets
    users = [
        OidcUser(email, hash_secret(password), totp.get(email))
        for email, password in sorted(ctx.settings.oidc_users.items())
    ] + [
        OidcUser(email, hashed, totp.get(email))
        for email, hashed in sorted(ctx.settings.oidc_user_hashes.items())
        if email not in ctx.settings.oidc_users  # --oidc-user EMAIL:PASSWORD wins
    ]
    keys = OidcKeyRing(ctx.storage.kv, sealer=ctx.sealer)
    # Read (or create) the published keys now: a KEK that does not unwrap them stops the start
    # with one sentence instead of failing requests, and clear keys of an older version are
    # wrapped in place right away.
    await keys.jwks()
    provider = OidcProvider(
        ctx.settings.oidc_issuer, users=users, clients=ctx.settings.oidc_clients,
        kv=ctx.storage.kv, keys=keys, password_grant=ctx.settings.oidc_password_grant,
        require_second_factor=ctx.settings.oidc_require_second_factor, sealer=ctx.sealer,
        upstreams=ctx.settings.oidc_upstreams,
        webauthn_user_verification=ctx.settings.oidc_webauthn_user_verification,
    )
    ctx.oidc = provider
    limiter = provider.limiter
    ctx.gauges["keyless_oidc_logins"] = (
        "Secrets the embedded provider checked (passwords, client secrets, device user codes): "
        "accepted (ok), or refused or cut off (failed).",
        lambda: Counted("result", {"ok": float(limiter.logins),
                                   "failed": float(limiter.login_failures)}))
    ctx.oidc_urls.append(
        ServiceUrl(ctx.settings.oidc_issuer, 1, await ctx.validity("oidc"))
    )
    ctx.components.append(
        Component(
            "oidc", "/oidc", oidc_routes(provider), start=provider.start, close=provider.close,
            url=ctx.settings.oidc_issuer,
        )
    )


async def add_ctlog(ctx: WiringContext) -> None:
    """The CT log at ``P/ctlog``; the CA logs precertificates to it in-process."""
    from keyless.formats.note_keys import NoteSigner
    from keyless.log import TransparencyLog
    from keyless.services.ctlog import CTLogService
    from keyless.services.ctlog.routes import routes

    base = f"{ctx.public_url}/ctlog"
    origin = f"{ctx.settings.public_host}/ctlog"
    signer = await signer_key(ctx, "ctlog/key.pem", "ecdsa-p256")
    engine = TransparencyLog(
        ctx.storage, name="ctlog", origin=origin, signer=NoteSigner.for_key(origin, signer),
    )  # no seed: CT indexes never appear in bundles, and static-ct data tiles need TileLeafs
    service = CTLogService(engine=engine, kv=ctx.storage.kv, signer=signer, roots=[],
                           origin=origin)
    ctx.ctlog = service
    ctx.ctlogs.append(
        LogKey(base, service.public_key, spki_key_id(service.public_key),
               await ctx.validity("ctlog"))
    )
    start, close = _engine_lifecycle(engine, None)
    _watch_log(ctx, engine)
    ctx.components.append(
        Component(
            "ctlog", "/ctlog", routes(service, ctx.client_budget()),
            start=start, close=close, url=base,
        )
    )


async def _generations(ctx: WiringContext, service: str) -> list[tuple[str, str, Validity]]:
    """``(material name, organization, validity)`` of every key generation of ``service``,
    oldest first; the last is active (:mod:`keyless.server.rotation`)."""
    from keyless.server.rotation import generations

    out = []
    for number, generation in enumerate(await generations(ctx.secrets, service), start=1):
        created = generation.created or await ctx.created_at(service)
        organization = "keyless" if number == 1 else f"keyless-g{number}"
        out.append(
            (generation.id, organization, Validity(created - VALIDITY_MARGIN, generation.end))
        )
    return out


def _operator_ca(settings: Settings) -> bool:
    """Whether ``[ca]`` names the issuing CA (PEM files or a PKCS#11 key) instead of generating."""
    return settings.ca_chain_pem is not None or bool(settings.ca_pkcs11_uri)


async def _load_operator_ca(ctx: WiringContext, name: str) -> CAMaterial:
    """The active CA from the operator's PEM files, or built around an HSM key.

    PEM files are read as they are on every process (each frontend needs them). With a PKCS#11
    key, keyless issues the root and intermediate certificates around it once and shares them
    like generated material, so every process serves the same chain.
    """
    import functools

    from keyless.services.ca import load_material

    settings = ctx.settings
    password: bytes | None = None
    if settings.ca_key_password_env:
        value = os.environ.get(settings.ca_key_password_env)
        if value is None:
            raise ConfigError(
                f"[ca] key_password_env names {settings.ca_key_password_env}, which is not set"
            )
        password = value.encode()
    if settings.ca_chain_pem is not None:
        return load_material(
            settings.data_dir / "keys" / name,
            chain_pem=settings.ca_chain_pem, key_pem=settings.ca_key_pem, password=password,
        )
    create = functools.partial(load_material, pkcs11_uri=settings.ca_pkcs11_uri, password=password)
    return create(await material_dir(ctx, name, create))


async def add_ca(ctx: WiringContext) -> None:
    """The Fulcio-compatible CA at the port root (interop.md §5 item 10).

    Every key generation is published in the trusted root with its validity window; the newest
    issues. Generations get distinct subject names so chain building never confuses them.
    """
    import functools

    import httpx

    from keyless.identity import IdentityVerifier
    from keyless.services.ca import CAService, TokenReplayGuard, load_or_create
    from keyless.services.ca.routes import routes as ca_routes

    if ctx.oidc is None or ctx.ctlog is None:
        raise ConfigError("the CA needs the OIDC provider and the CT log")
    materials = []
    generations = await _generations(ctx, "ca")
    for number, (name, organization, validity) in enumerate(generations, start=1):
        if number == len(generations) and _operator_ca(ctx.settings):
            material = await _load_operator_ca(ctx, name)
        else:
            create = functools.partial(load_or_create, organization=organization)
            material = create(await material_dir(ctx, name, create))
        ctx.ctlog.add_root(material.root)
        ctx.authorities.append(
            Authority(organization, organization, ctx.public_url,
                      tuple(material.chain_der()), validity)
        )
        materials.append(material)
    http = httpx.AsyncClient(timeout=10.0)
    issuers = [*ctx.oidc.issuer_configs(), *ctx.settings.issuers]
    verifier = IdentityVerifier(issuers, http, local_jwks=ctx.oidc.local_jwks())
    service = CAService(
        material=materials[-1], identity=verifier, ctlog=ctx.ctlog,
        replay_guard=TokenReplayGuard(enabled=ctx.settings.ca_token_replay_guard),
    )
    ctx.ca_urls.append(ServiceUrl(ctx.public_url, 1, await ctx.validity("ca")))
    issued = service.issued
    ctx.gauges["keyless_ca_certificates_issued"] = (
        "Certificates the CA issued in this process, by OIDC issuer (a retried token not "
        "counted).", lambda: Counted("issuer", {k: float(v) for k, v in issued.items()}))
    ctx.components.append(
        Component(
            "ca", "", ca_routes(service, ctx.client_budget()), close=http.aclose,
            url=ctx.public_url,
        )
    )


async def add_tsa(ctx: WiringContext) -> None:
    """The RFC 3161 TSA at ``P/api/v1/timestamp`` (full endpoint in the signing config); every
    key generation is published, the newest signs."""
    import functools

    from keyless.services.tsa import (
        TIMESTAMP_PATH,
        ClockPolicy,
        TimestampService,
        TsaSettings,
        load_or_create_credentials,
    )
    from keyless.services.tsa.routes import routes as tsa_routes

    url = ctx.public_url + TIMESTAMP_PATH
    credentials = None
    for name, organization, validity in await _generations(ctx, "tsa"):
        create = functools.partial(load_or_create_credentials, organization=organization)
        credentials = create(await material_dir(ctx, name, create))
        ctx.tsas.append(
            Authority(organization, f"{organization}-tsa", url, tuple(credentials.chain_der),
                      validity)
        )
    assert credentials is not None
    clock = ClockPolicy(
        ntp_servers=ctx.settings.tsa_ntp_servers,
        max_drift=ctx.settings.tsa_max_drift,
        require_ntp=ctx.settings.tsa_require_ntp,
    )
    service = TimestampService(credentials, TsaSettings(clock=clock))
    guard = service.guard

    def clock_offset() -> dict[str, float]:
        offset = guard.status()["ntp_offset"]
        return {"ntp": float(offset)} if isinstance(offset, (int, float)) else {}

    ctx.gauges["keyless_tsa_clock_offset_seconds"] = (
        "Offset of the TSA's clock from NTP time at the last check (absent without NTP servers).",
        clock_offset)
    ctx.gauges["keyless_tsa_clock_trusted"] = (
        "1 while the TSA trusts its clock and issues timestamps, 0 while it refuses (503).",
        lambda: {"tsa": 1.0 if guard.status()["trusted"] else 0.0})
    ctx.tsa_urls.append(ServiceUrl(url, 1, await ctx.validity("tsa")))
    ctx.components.append(
        Component(
            "tsa", "", tsa_routes(service, ctx.client_budget()),
            start=service.start, close=service.close, url=url,
        )
    )


def _trusted_issuers(ctx: WiringContext) -> TrustedIssuers:
    """The CA certificates of this instance's trusted root: the search index believes the
    identities of certificates issued under them only (docs/operator-guide.md, Search)."""
    from cryptography import x509

    from keyless.services.tlog.identities import TrustedIssuers

    return TrustedIssuers(
        [x509.load_der_x509_certificate(der) for ca in ctx.authorities for der in ca.cert_chain]
    )


async def add_rekor_v2(ctx: WiringContext) -> None:
    """Rekor v2 at ``P/rekor``: Ed25519 checkpoints with origin ``host:port/rekor``.

    After ``keyless admin rotate log`` the new shard lives at ``P/rekor-N`` with origin
    ``host:port/rekor-N`` (a shard's name must be a substring of its own base URL, interop.md §5
    item 8) and is the one named in the signing config; retired shards stay readable (checkpoint,
    tiles) at their old base URL and stay in the trusted root with a closed validity window.
    """
    from keyless.formats.note_keys import NoteSigner
    from keyless.log import TransparencyLog
    from keyless.services.tlog.routes import retired_routes
    from keyless.services.tlog.routes import routes as tlog_routes
    from keyless.services.tlog.service import RekorV2Service

    shards = await _generations(ctx, "rekor-v2")
    latest = len(shards)
    active_base = f"{ctx.public_url}/rekor{'' if latest == 1 else f'-{latest}'}"
    for number, (name, _organization, validity) in enumerate(shards, start=1):
        suffix = "" if number == 1 else f"-{number}"
        base = f"{ctx.public_url}/rekor{suffix}"
        origin = f"{ctx.settings.public_host}/rekor{suffix}"
        signer = await signer_key(ctx, f"{name}/key.pem", "ed25519")
        public = signer.public_key()
        assert isinstance(public, ed25519.Ed25519PublicKey)
        log_id = note_key_id(origin, public)
        publisher = None
        if number == len(shards) and ctx.settings.witnessing.enabled:
            from keyless.server.witnessing import build_witnessing, gauges

            publisher = build_witnessing(ctx.settings.witnessing, ctx.storage.kv)
            ctx.gauges.update(gauges(publisher))
        engine = TransparencyLog(
            ctx.storage, name=name, origin=origin, signer=NoteSigner.ed25519(origin, signer),
            seed=[SEED], publisher=publisher,
        )
        service = RekorV2Service(engine, log_id=log_id, log_name=name,
                                 search_index=ctx.storage.search_index, kv=ctx.storage.kv,
                                 trusted=_trusted_issuers(ctx))
        ctx.tlogs.append(LogKey(base, public, log_id, validity))
        ctx.tlog_services.append((base, service))
        start, close = _engine_lifecycle(engine, service)
        _watch_log(ctx, engine)
        routes = tlog_routes(service, ctx.client_budget())
        active = number == len(shards)
        if active:
            # v2 first: sigstore-python keeps the highest majorApiVersion per operator
            ctx.rekor_urls.insert(0, ServiceUrl(base, 2, Validity(validity.start)))
        else:
            routes = retired_routes(routes, active_base)
        component = "rekor-v2" if active else f"rekor-v2 shard {number} (retired)"
        ctx.components.append(
            Component(component, f"/rekor{suffix}", routes, start=start, close=close, url=base)
        )


async def add_rekor_v1(ctx: WiringContext) -> None:
    """Rekor v1 at the port root: ECDSA checkpoints, origin ``host:port - treeID``.

    The v1 API has one place (the port root), so after a log rotation only the newest shard is
    served; retired shards remain in the trusted root (their bundles keep verifying offline).
    """
    import secrets as random

    from keyless.formats.note_keys import NoteSigner
    from keyless.log import TransparencyLog
    from keyless.services.tlog.routes import routes as tlog_routes
    from keyless.services.tlog.service import RekorV1Service

    base = ctx.public_url
    host = ctx.settings.public_host
    shards = await _generations(ctx, "rekor-v1")
    for number, (name, _organization, validity) in enumerate(shards, start=1):
        signer = await signer_key(ctx, f"{name}/key.pem", "ecdsa-p256")
        public = signer.public_key()
        ctx.tlogs.append(LogKey(base, public, spki_key_id(public), validity))
        if number < len(shards):
            continue
        tree_id = int(
            await ctx.secrets.obtain(
                f"{name}/tree-id", lambda: str(random.randbelow(2**62) + 1).encode()
            )
        )
        origin = f"{host} - {tree_id}"

        def timestamp_line() -> list[str]:
            # Rekor v1 checkpoints carry "Timestamp: <unix nanoseconds>" (sigstore/rekor).
            return [f"Timestamp: {time.time_ns()}"]

        engine = TransparencyLog(
            ctx.storage, name=name, origin=origin, signer=NoteSigner.ecdsa(host, signer),
            seed=[SEED], checkpoint_extensions=timestamp_line,
        )
        service = RekorV1Service(engine, signer=signer, tree_id=tree_id, log_name=name,
                                 search_index=ctx.storage.search_index, kv=ctx.storage.kv,
                                 trusted=_trusted_issuers(ctx))
        ctx.rekor_urls.append(ServiceUrl(base, 1, Validity(validity.start)))
        ctx.tlog_services.insert(0, (base, service))
        start, close = _engine_lifecycle(engine, service)
        _watch_log(ctx, engine)
        ctx.components.append(
            Component(
                "rekor-v1", "", tlog_routes(service, ctx.client_budget()),
                start=start, close=close, url=base,
            )
        )


async def add_explorer(ctx: WiringContext) -> None:
    """The log explorer at ``P/`` (HTML over every log; :mod:`keyless.services.explorer`)."""
    from keyless.services.explorer import ExplorerService
    from keyless.services.explorer.routes import routes as explorer_routes

    service = ExplorerService(
        tlogs=ctx.tlog_services, ctlog=ctx.ctlog,
        public_url=ctx.public_url, ct_base_url=f"{ctx.public_url}/ctlog",
        ca_chains=[(ca.common_name, ca.cert_chain) for ca in ctx.authorities],
        tsa_chains=[(tsa.common_name, tsa.cert_chain) for tsa in ctx.tsas],
    )
    ctx.components.append(Component("explorer", "", explorer_routes(service), url=ctx.public_url))


#: the service steps, in build order (the CA needs the OIDC provider and the CT log). Every
#: route is a full path, so mount order does not matter; the CA, Rekor v1 and the TSA share the
#: port root without overlapping paths.
SERVICE_STEPS: list[Callable[[WiringContext], Awaitable[None]]] = [
    add_oidc,
    add_ctlog,
    add_ca,
    add_tsa,
    add_rekor_v2,
    add_rekor_v1,
    add_explorer,
]
