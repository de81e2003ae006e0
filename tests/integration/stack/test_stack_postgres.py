"""Two ``keyless serve`` processes sharing one PostgreSQL database (contracts.md §2, issue 9).

Both are started at the same moment with their own data directories (two machines behind one
load balancer, one public URL), so their first-start initialisation races: they must converge on
one set of keys, one trust configuration and one TUF history. Real clients then sign through
either process, on Rekor v1 and v2, and every bundle verifies with every client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from stackutil import RunningStack, free_port, launch_stack, wait_healthy
from test_stack_interop import (
    SIGNERS,
    VERIFIERS,
    Workspace,
    make_workspace,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pair(postgres_cluster: Any, tmp_path_factory: pytest.TempPathFactory,
         ) -> Iterator[tuple[RunningStack, RunningStack]]:
    database = postgres_cluster.create_database()
    root = tmp_path_factory.mktemp("pg")
    port_a, port_b = free_port(), free_port()
    public = f"http://localhost:{port_a}"
    # the KEK file does not exist yet: the two processes create it at once and share one key
    args = ("--database", database, "--public-url", public, "--kek-file", str(root / "kek"))
    a = launch_stack(root / "a" / "data", *args, port=port_a)
    b = launch_stack(root / "b" / "data", *args, port=port_b)
    b.public_url = public
    try:
        wait_healthy(a, 60)
        wait_healthy(b, 60)
        yield a, b
    finally:
        a.stop()
        b.stop()


def _via(stack: RunningStack, config: dict[str, Any]) -> dict[str, Any]:
    """The trust config with its signing URLs pointed at ``stack`` itself (a load balancer
    would pick the process; the trusted root and its names stay those of the public URL)."""
    if not stack.public_url:
        return config
    text = json.dumps(config["signingConfig"]).replace(stack.public_url, stack.url)
    return {**config, "signingConfig": json.loads(text)}


def test_both_processes_publish_the_same_trust(pair: tuple[RunningStack, RunningStack]) -> None:
    a, b = pair
    assert a.client_trust_config() == b.client_trust_config()
    for path in ("/tuf/1.root.json", "/tuf/timestamp.json", "/tuf/1.targets.json"):
        first = httpx.get(a.url + path, timeout=5)
        assert first.status_code == 200, path
        assert first.content == httpx.get(b.url + path, timeout=5).content, path
    assert httpx.get(a.url + "/tuf/2.root.json", timeout=5).status_code == 404


@pytest.fixture(scope="module")
def workspaces(pair: tuple[RunningStack, RunningStack], tmp_path_factory: pytest.TempPathFactory,
               sigstore_python: Path, node_path: Path) -> dict[str, Workspace]:
    a, b = pair
    out = {}
    for name, stack in (("a", a), ("b", b)):
        directory = tmp_path_factory.mktemp(f"ws-{name}")
        out[name] = make_workspace(stack, directory, node_path,
                                   _via(stack, stack.client_trust_config()))
    return out


@pytest.mark.parametrize("signer", ["sigstore-python", "sigstore-js", "keyless"])
@pytest.mark.parametrize("rekor", [1, 2])
def test_sign_through_both_processes(workspaces: dict[str, Workspace], signer: str,
                                     rekor: int) -> None:
    indices = []
    for name in ("a", "b"):
        ws = workspaces[name]
        bundle = ws.directory / f"{signer}-v{rekor}.sigstore.json"
        SIGNERS[signer](ws, rekor, "blob", bundle)
        entry = json.loads(bundle.read_text())["verificationMaterial"]["tlogEntries"][0]
        indices.append(int(entry["logIndex"]))
        # verify with the *other* process's view of the trust material: one instance
        other = workspaces["b" if name == "a" else "a"]
        failures = []
        for verifier, verify in VERIFIERS.items():
            try:
                verify(other, bundle)
            except AssertionError as exc:
                failures.append(f"{verifier} on a bundle signed via {name}: {exc}")
        assert not failures, "\n\n".join(failures)
    assert indices[0] != indices[1], "two processes handed out the same log index"


def test_logs_agree_after_writes_through_both(workspaces: dict[str, Workspace],
                                             pair: tuple[RunningStack, RunningStack]) -> None:
    """A write through B is visible in A's checkpoint: one log, not two."""
    a, b = pair
    ws = workspaces["b"]
    SIGNERS["sigstore-python"](ws, 2, "blob", ws.directory / "agree.sigstore.json")
    entry = json.loads((ws.directory / "agree.sigstore.json").read_text())[
        "verificationMaterial"]["tlogEntries"][0]
    index = int(entry["logIndex"])
    note_a = httpx.get(a.url + "/rekor/checkpoint", timeout=5).text.split("\n")
    note_b = httpx.get(b.url + "/rekor/checkpoint", timeout=5).text.split("\n")
    assert note_a[0] == note_b[0] == f"localhost:{a.port}/rekor"
    assert int(note_a[1]) > index, "A's checkpoint does not cover the entry written through B"
    v1_a = httpx.get(a.url + "/api/v1/log", timeout=5).json()
    v1_b = httpx.get(b.url + "/api/v1/log", timeout=5).json()
    assert v1_a["treeID"] == v1_b["treeID"]


def test_rotation_with_a_rolling_restart(postgres_cluster: Any, tmp_path: Path,
                                         sigstore_python: Path, node_path: Path) -> None:
    """Rotate the CA while both processes serve, restart them one at a time: at every moment one
    of them answers, and afterwards both publish the same trust with two CA generations."""
    import subprocess

    from stackutil import KEYLESS, start_stack

    database = postgres_cluster.create_database()
    port_a, port_b = free_port(), free_port()
    public = f"http://localhost:{port_a}"
    kek = tmp_path / "kek"
    args = ("--database", database, "--public-url", public, "--kek-file", str(kek))
    a = start_stack(tmp_path / "a" / "data", *args, port=port_a)
    b = start_stack(tmp_path / "b" / "data", *args, port=port_b)
    b.public_url = public
    try:
        rotated = subprocess.run(
            [str(KEYLESS), "admin", "rotate", "ca", "--data-dir", str(a.data_dir),
             "--database", database, "--kek-file", str(kek)],
            capture_output=True, text=True, timeout=60, check=False)
        assert rotated.returncode == 0, rotated.stderr
        assert b.stop() == 0
        assert httpx.get(f"{a.url}/healthz", timeout=5).status_code == 200  # A still serves
        b = start_stack(tmp_path / "b" / "data", *args, port=port_b)
        b.public_url = public
        assert a.stop() == 0
        assert httpx.get(f"{b.url}/healthz", timeout=5).status_code == 200  # B serves
        a = start_stack(tmp_path / "a" / "data", *args, port=port_a)
        config = a.client_trust_config()
        assert config == b.client_trust_config()
        assert len(config["trustedRoot"]["certificateAuthorities"]) == 2  # type: ignore[index]
        (tmp_path / "ws").mkdir()
        ws = make_workspace(b, tmp_path / "ws", node_path, _via(b, config))
        bundle = ws.directory / "rotated.sigstore.json"
        SIGNERS["sigstore-python"](ws, 2, "blob", bundle)
        for verify in VERIFIERS.values():
            verify(ws, bundle)
    finally:
        a.stop()
        b.stop()
