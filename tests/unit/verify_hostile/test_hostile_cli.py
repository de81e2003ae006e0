"""A handful of hostile bundles through the real CLIs (subprocesses).

``keyless verify`` must exit 0 on the original and non-zero with one sentence on stderr (no
traceback) otherwise (contracts.md §4), naming what failed: the CLI's catch-all
"keyless: unexpected error (…)" line is a crash in disguise. ``keyless-conformance
verify-bundle`` likewise (interop.md §4.1: any non-zero exit counts, but a traceback is still a
crash).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hostile_util import (
    BY_NAME,
    CHECKPOINT,
    MAX_MESSAGE,
    TLOG,
    Case,
    Json,
    UncleanRejection,
    cert_path,
    decode,
    dumps,
    encode,
    flip,
    get,
    put,
)

from conftest import require
from keyless.formats.trustroot import CLIENT_TRUST_CONFIG_V01

BIN = Path(sys.executable).parent
V03 = BY_NAME["happy-path-v0.3"]
REKOR2 = BY_NAME["rekor-v2+tsa"]


def _flip_signature(b: Json) -> Json:
    path = ("messageSignature", "signature")
    return put(b, path, encode(flip(decode(get(b, path)), 10, 3)))


def _bad_key(b: Json) -> Json:
    path = cert_path(b)
    assert path is not None
    raw = decode(get(b, path))
    return put(b, path, encode(flip(raw, raw.find(bytes.fromhex("06082a8648ce3d030107")) + 16, 0)))


VARIANTS: dict[str, Callable[[Json], Json | bytes]] = {
    "original": lambda b: b,
    "flipped-signature": _flip_signature,
    "truncated-json": lambda b: dumps(b)[:-100],
    "deep-json": lambda b: b"[" * 100_000 + b"]" * 100_000,
    "undecodable-leaf-key": _bad_key,
    "integrated-time-year-10000": lambda b: put(b, (*TLOG, "integratedTime"), "253402300800"),
    "surrogate-in-checkpoint": lambda b: put(b, CHECKPOINT, "\ud800"),
    "1MB-mediaType": lambda b: put(b, ("mediaType",), "A" * (1 << 20)),
    "terminal-escape-in-kind": lambda b: put(b, (*TLOG, "kindVersion", "kind"), "\x1b[2Jx"),
}


def _write(tmp_path: Path, case: Case, variant: str) -> Path:
    data = VARIANTS[variant](case.load())
    path = tmp_path / "bundle.sigstore.json"
    path.write_bytes(data if isinstance(data, bytes) else dumps(data))
    return path


def _assert_outcome(proc: subprocess.CompletedProcess[str], variant: str) -> None:
    if variant == "original":
        assert proc.returncode == 0, proc.stderr[-2000:]
        return
    assert proc.returncode != 0, f"tampered bundle accepted: {proc.stderr[-500:]}"
    err = proc.stderr.strip()
    if "Traceback" in err or len(err.splitlines()) != 1 or len(err) > MAX_MESSAGE + 100:
        raise UncleanRejection(f"stderr is not one sentence ({len(err)} chars): {err[-1500:]}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in err):
        raise UncleanRejection(f"stderr holds control characters: {err[-300:]!a}")
    if "unexpected error" in err:  # the CLI's catch-all: a crash, not a verification failure
        raise UncleanRejection(f"stderr is not one sentence ({len(err)} chars): {err[-1500:]}")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_keyless_verify(tmp_path: Path, variant: str) -> None:
    exe = BIN / "keyless"
    require(exe.exists(), f"{exe} (pip install -e .)")
    trust = tmp_path / "trust.json"
    root = json.loads(V03.root.read_bytes())
    trust.write_text(json.dumps({"mediaType": CLIENT_TRUST_CONFIG_V01, "trustedRoot": root}))
    bundle = _write(tmp_path, V03, variant)
    proc = subprocess.run(
        [str(exe), "verify", str(V03.artifact), "--bundle", str(bundle),
         "--cert-identity", V03.identity, "--cert-oidc-issuer", V03.issuer,
         "--trust-config", str(trust), "--offline"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    _assert_outcome(proc, variant)


@pytest.mark.parametrize(
    "variant", ["original", "flipped-signature", "surrogate-in-checkpoint"]
)
def test_keyless_conformance_verify_bundle(tmp_path: Path, variant: str) -> None:
    exe = BIN / "keyless-conformance"
    require(exe.exists(), f"{exe} (pip install -e .)")
    bundle = _write(tmp_path, REKOR2, variant)
    proc = subprocess.run(
        [str(exe), "verify-bundle", "--bundle", str(bundle),
         "--certificate-identity", REKOR2.identity,
         "--certificate-oidc-issuer", REKOR2.issuer,
         "--trusted-root", str(REKOR2.root), str(REKOR2.artifact)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    _assert_outcome(proc, variant)
