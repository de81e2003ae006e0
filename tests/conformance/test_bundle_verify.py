"""All 70 sigstore-conformance bundle-verify cases x {PATH, DIGEST} through ``keyless-conformance``.

Runs the entry point exactly as the suite does (interop.md §4.1-4.2): from a temporary copy of the
assets, with relative paths, the production public-good root by default, ``--key`` when the case
ships ``key.pub``; ``*_fail`` cases must exit non-zero, every other case 0. The 140 runs are split
into one subprocess per case (both modes) to keep the wall time low; the final test requires that
every one of the 140 runs behaved as expected.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import VECTORS, require

CASES_DIR = VECTORS / "conformance" / "bundle-verify"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GHA = "https://token.actions.githubusercontent.com"
ENTRYPOINT = Path(sys.executable).parent / "keyless-conformance"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir()) if CASES_DIR.is_dir() else []


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the conformance assets (the suite runs from a temp copy)."""
    require(CASES_DIR.is_dir(), f"conformance vectors at {CASES_DIR}")
    require(ENTRYPOINT.exists(), f"keyless-conformance at {ENTRYPOINT}")
    dest = tmp_path_factory.mktemp("conformance") / "assets"
    shutil.copytree(VECTORS / "conformance", dest)
    return dest


def _argv(case: str, mode: str, assets: Path) -> list[str]:
    rel = Path("bundle-verify") / case
    d = assets / rel
    artifact = rel / "artifact" if (d / "artifact").exists() else Path("bundle-verify/a.txt")
    target = str(artifact)
    if mode == "DIGEST":
        target = "sha256:" + hashlib.sha256((assets / artifact).read_bytes()).hexdigest()
    argv = [str(ENTRYPOINT), "verify-bundle", "--bundle", str(rel / "bundle.sigstore.json")]
    if (d / "key.pub").exists():
        argv += ["--key", str(rel / "key.pub")]
    else:
        identity = (d / "identity").read_text().strip() if (d / "identity").exists() else BEACON
        issuer = (d / "issuer").read_text().strip() if (d / "issuer").exists() else GHA
        argv += ["--certificate-identity", identity, "--certificate-oidc-issuer", issuer]
    if (d / "trusted_root.json").exists():
        argv += ["--trusted-root", str(rel / "trusted_root.json")]
    return [*argv, target]


def test_case_count() -> None:
    """The vectors hold the 70 cases the README describes (21 accept, 49 reject)."""
    require(CASES_DIR.is_dir(), f"conformance vectors at {CASES_DIR}")
    assert len(CASES) == 70
    assert sum(c.endswith("_fail") for c in CASES) == 49


@pytest.mark.parametrize("mode", ["PATH", "DIGEST"])
@pytest.mark.parametrize("case", CASES)
def test_verify(case: str, mode: str, assets: Path) -> None:
    """One ``test_verify[MODE-case]`` of the suite: exit status 0 iff the case must pass."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HTTP", "HTTPS"))}
    proc = subprocess.run(
        _argv(case, mode, assets), cwd=assets, capture_output=True, text=True, env=env,
        timeout=60, check=False,
    )
    if case.endswith("_fail"):
        assert proc.returncode != 0, f"{case} must be rejected but was accepted"
        assert "Traceback" not in proc.stderr, proc.stderr
    else:
        assert proc.returncode == 0, f"{case} must be accepted: {proc.stderr}"
