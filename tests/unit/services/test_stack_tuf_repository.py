"""The TUF repository against python-tuf's own client (protocols.md §10)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import FetcherInterface, Updater

from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.services.tuf import (
    Expiry,
    FileMetadataStore,
    MemoryMetadataStore,
    TufRepository,
    TufService,
)
from keyless.services.tuf.routes import routes as tuf_routes

ROLES = ("root", "targets", "snapshot", "timestamp")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class AppFetcher(FetcherInterface):
    """Fetches from the ASGI app in-process and records the paths requested."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.paths: list[str] = []

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = url.removeprefix("http://tuf.test")
        self.paths.append(path)
        response = self.client.get(path)
        if response.status_code != 200:
            raise DownloadHTTPError(f"{path}: {response.status_code}", response.status_code)
        return iter([response.content])


def _keys() -> dict[str, ed25519.Ed25519PrivateKey]:
    return {role: ed25519.Ed25519PrivateKey.generate() for role in ROLES}


def _client(repo: TufRepository) -> TestClient:
    service = TufService(repo)
    app = Starlette(routes=[Mount("/tuf", routes=tuf_routes(service))],
                    exception_handlers=EXCEPTION_HANDLERS)
    return TestClient(app)


def _update(tmp: Path, client: TestClient, root: bytes) -> tuple[Updater, AppFetcher]:
    fetcher = AppFetcher(client)
    (tmp / "meta").mkdir(exist_ok=True)
    (tmp / "targets").mkdir(exist_ok=True)
    updater = Updater(str(tmp / "meta"), "http://tuf.test/tuf", str(tmp / "targets"),
                      "http://tuf.test/tuf/targets/", fetcher, bootstrap=root)
    updater.refresh()
    return updater, fetcher


def test_python_tuf_client_bootstraps_and_downloads_both_targets(tmp_path: Path) -> None:
    repo = TufRepository(MemoryMetadataStore(), _keys())
    targets = {"trusted_root.json": b'{"a": 1}', "signing_config.v0.2.json": b'{"b": 2}'}
    asyncio.run(repo.publish(targets))
    client = _client(repo)
    root = asyncio.run(repo.root_json(1))
    assert json.loads(root)["signed"]["consistent_snapshot"] is True
    updater, fetcher = _update(tmp_path, client, root)
    for name, data in targets.items():
        info = updater.get_targetinfo(name)
        assert info is not None
        path = updater.download_target(info)
        assert Path(path).read_bytes() == data
    # consistent snapshots: versioned metadata and hash-prefixed targets (protocols.md §10)
    assert "/tuf/2.root.json" in fetcher.paths
    assert "/tuf/1.snapshot.json" in fetcher.paths
    assert "/tuf/1.targets.json" in fetcher.paths
    assert any(p.startswith("/tuf/targets/") and p.endswith(".trusted_root.json")
               for p in fetcher.paths)


def test_publish_is_idempotent_and_new_targets_bump_versions() -> None:
    repo = TufRepository(MemoryMetadataStore(), _keys())
    first = {"trusted_root.json": b"1", "signing_config.v0.2.json": b"2"}
    assert asyncio.run(repo.publish(first)) == 1
    assert asyncio.run(repo.publish(first)) == 1
    assert asyncio.run(repo.publish({**first, "trusted_root.json": b"3"})) == 2
    assert asyncio.run(repo.latest_version("targets")) == 2
    assert asyncio.run(repo.latest_version("root")) == 1


def test_timestamp_is_resigned_before_it_expires(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    repo = TufRepository(MemoryMetadataStore(), _keys(), clock=clock,
                         expiry=Expiry(timestamp=timedelta(days=1)))
    asyncio.run(repo.publish({"trusted_root.json": b"1", "signing_config.v0.2.json": b"2"}))
    clock.now += 3600
    assert asyncio.run(repo.refresh()) == 1          # more than half the lifetime left
    clock.now += 13 * 3600
    assert asyncio.run(repo.refresh()) == 2          # less than half left: re-signed
    ts = json.loads(asyncio.run(repo.metadata("timestamp", None)))
    assert ts["signed"]["version"] == 2


def test_two_publishers_on_one_store_converge(tmp_path: Path) -> None:
    """Two processes sharing a store (PostgreSQL kv) keep one history."""
    keys = _keys()
    store = FileMetadataStore(tmp_path / "tuf")
    a = TufRepository(store, keys)
    b = TufRepository(store, keys)
    targets = {"trusted_root.json": b"x", "signing_config.v0.2.json": b"y"}

    async def both() -> list[int]:
        return list(await asyncio.gather(a.publish(targets), b.publish(targets)))

    versions = asyncio.run(both())
    assert versions == [1, 1]
    assert asyncio.run(a.metadata("timestamp", 1)) == asyncio.run(b.metadata("timestamp", 1))


def test_unknown_paths_are_404_json() -> None:
    repo = TufRepository(MemoryMetadataStore(), _keys())
    asyncio.run(repo.publish({"trusted_root.json": b"1", "signing_config.v0.2.json": b"2"}))
    client = _client(repo)
    for path in ("/tuf/2.root.json", "/tuf/x.json", "/tuf/targets/abc.trusted_root.json",
                 "/tuf/9.targets.json"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == 404


def test_missing_role_key_is_refused() -> None:
    keys = _keys()
    del keys["snapshot"]
    with pytest.raises(ValueError, match="snapshot"):
        TufRepository(MemoryMetadataStore(), keys)
