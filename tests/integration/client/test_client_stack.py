"""The keyless client against a real ``keyless serve`` stack (contracts.md §2, §4).

Signs with ``keyless sign`` / ``keyless attest`` (one certificate for several files, Rekor v2 and
v1, ``--trust-config`` and ``--server``), verifies with ``keyless verify`` and with unmodified
sigstore-python 4.5.1, and refreshes trust through the stack's TUF repository with python-tuf.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stack"))
from stackutil import ROOT, USER, RunningStack, start_stack

from keyless.formats.bundle import Bundle
from keyless.trust.tuf import TufTrust

pytestmark = pytest.mark.integration
KEYLESS = ROOT / ".venv" / "bin" / "keyless"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("client-stack") / "data")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def work(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("client")
    (d / "tc.json").write_text(json.dumps(stack.client_trust_config()))
    for name in ("a.txt", "b.txt", "c.txt"):
        (d / name).write_bytes(f"artifact {name}\n".encode())
    (d / "predicate.json").write_text(json.dumps({
        "buildDefinition": {"buildType": "https://example.com/t", "externalParameters": {}},
        "runDetails": {"builder": {"id": "https://example.com/builder"}},
    }))
    return d


def keyless(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "SIGSTORE_ID_TOKEN"}
    return subprocess.run([str(KEYLESS), *args], capture_output=True, text=True, timeout=120,
                          check=False, env={**clean, **(env or {})})


def verify_args(stack: RunningStack, work: Path, artifact: str, bundle: str) -> list[str]:
    return [artifact, "--bundle", bundle, "--cert-identity", USER,
            "--cert-oidc-issuer", stack.issuer, "--trust-config", str(work / "tc.json")]


@pytest.mark.parametrize("rekor", ["2", "1"])
def test_sign_many_files_with_one_certificate(stack: RunningStack, work: Path, rekor: str) -> None:
    files = [str(work / n) for n in ("a.txt", "b.txt", "c.txt")]
    signed = keyless("sign", *files, "--identity-token", stack.token(), "--rekor-version", rekor,
                     "--trust-config", str(work / "tc.json"))
    assert signed.returncode == 0, signed.stderr
    bundles = [Bundle.from_json(Path(f + ".sigstore.json").read_bytes()) for f in files]
    assert len({b.verification_material.certificates for b in bundles}) == 1
    for b in bundles:
        entry = b.verification_material.tlog_entries[0]
        assert b.media_type == "application/vnd.dev.sigstore.bundle.v0.3+json"
        assert entry.version == ("0.0.2" if rekor == "2" else "0.0.1")
    for f in files:
        ok = keyless("verify", *verify_args(stack, work, f, f + ".sigstore.json"))
        assert ok.returncode == 0, ok.stderr
    wrong = keyless("verify", *verify_args(stack, work, files[0], files[1] + ".sigstore.json"))
    assert wrong.returncode == 1
    assert "verification failed" in wrong.stderr and "Traceback" not in wrong.stderr


def test_sigstore_python_verifies_keyless_bundle(stack: RunningStack, work: Path,
                                                 sigstore_python: Path) -> None:
    artifact = work / "a.txt"
    out = work / "py-check.sigstore.json"
    signed = keyless("sign", str(artifact), "--bundle", str(out), "--identity-token",
                     stack.token(), "--trust-config", str(work / "tc.json"))
    assert signed.returncode == 0, signed.stderr
    result = subprocess.run(
        [str(sigstore_python), "--trust-config", str(work / "tc.json"), "verify", "identity",
         "--bundle", str(out), "--cert-identity", USER, "--cert-oidc-issuer", stack.issuer,
         str(artifact)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def test_attest_and_verify_attestation_via_server(stack: RunningStack, work: Path) -> None:
    artifact = str(work / "b.txt")
    out = str(work / "b.att.sigstore.json")
    made = keyless("attest", artifact, "--predicate-type", "https://slsa.dev/provenance/v1",
                   "--predicate", str(work / "predicate.json"), "--bundle", out,
                   "--server", stack.url, env={"SIGSTORE_ID_TOKEN": stack.token()})
    assert made.returncode == 0, made.stderr
    ok = keyless("verify-attestation", *verify_args(stack, work, artifact, out))
    assert ok.returncode == 0, ok.stderr
    digest = "sha256:" + __import__("hashlib").sha256(Path(artifact).read_bytes()).hexdigest()
    ok = keyless("verify-attestation", *verify_args(stack, work, digest, out))
    assert ok.returncode == 0, ok.stderr
    other = keyless("verify-attestation", *verify_args(stack, work, str(work / "c.txt"), out))
    assert other.returncode == 1 and "subject" in other.stderr
    blob_bundle = str(work / "blob-not-attestation.sigstore.json")
    signed = keyless("sign", artifact, "--bundle", blob_bundle, "--identity-token",
                     stack.token(), "--trust-config", str(work / "tc.json"))
    assert signed.returncode == 0, signed.stderr
    assert keyless("verify", *verify_args(stack, work, artifact, blob_bundle)).returncode == 0
    blob = keyless("verify-attestation", *verify_args(stack, work, artifact, blob_bundle))
    assert blob.returncode == 1 and "not an attestation" in blob.stderr


def test_tuf_refresh_once_per_window_and_offline(stack: RunningStack, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from tuf.ngclient.updater import Updater

    root_json = (stack.data_dir / "tuf-root.json").read_bytes()
    calls: list[int] = []
    real_refresh = Updater.refresh

    def counting(self: Updater) -> None:
        calls.append(1)
        real_refresh(self)

    monkeypatch.setattr(Updater, "refresh", counting)
    now = [1_000_000.0]
    tuf = TufTrust(f"{stack.url}/tuf", root_json, cache_dir=tmp_path, refresh_window=60,
                   clock=lambda: now[0])
    expected = stack.client_trust_config()["trustedRoot"]
    first = tuf.client_trust_config()
    assert first.trusted_root.to_json()["tlogs"] == expected["tlogs"]  # type: ignore[index]
    assert first.signing_config is not None
    tuf.client_trust_config()
    assert len(calls) == 1, "a second call inside the window must not refresh"
    now[0] += 61
    tuf.client_trust_config()
    assert len(calls) == 2
    offline = TufTrust(f"{stack.url}/tuf", root_json, cache_dir=tmp_path, offline=True,
                       clock=lambda: now[0] + 10_000)
    assert offline.client_trust_config().trusted_root == first.trusted_root
    assert len(calls) == 2, "offline mode never refreshes"
