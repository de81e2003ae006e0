"""The built distribution works on its own (issue #17): ``python -m build`` makes an sdist and a
wheel; the wheel, installed into a fresh virtual environment, gives the client without the server
packages, and ``keyless[server]`` adds a ``keyless serve`` that answers ``/healthz``.

Dependencies come from the package index through pip's cache (as in CI). The phases' times are
printed (``-s``); the whole test takes about a minute on the 2-core CI machine.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "integration" / "stack"))

from stackutil import RunningStack, free_port, wait_healthy  # noqa: E402

from conftest import ROOT  # noqa: E402

pytestmark = pytest.mark.integration

#: what the sdist is made of (the rest of the clone is development material)
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "MANIFEST.in", "src")
CASES = ROOT / "tests" / "assets" / "conformance" / "bundle-verify"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GHA = "https://token.actions.githubusercontent.com"
SERVER_PACKAGES = ("starlette", "uvicorn", "psycopg")


def _run(argv: list[str | Path], env: dict[str, str], timeout: float = 240,
         ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{argv}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _timed(times: dict[str, float], phase: str, start: float) -> float:
    now = time.monotonic()
    times[phase] = now - start
    return now


def test_wheel_in_a_fresh_venv_client_then_server(tmp_path: Path) -> None:
    times: dict[str, float] = {}
    start = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env |= {"XDG_CACHE_HOME": str(tmp_path / "xdg-cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if "PIP_CACHE_DIR" not in env:  # the caller's pip cache, not the test's private XDG cache
        env["PIP_CACHE_DIR"] = str(Path.home() / ".cache" / "pip")

    # 1. python -m build on a copy of the sources: an sdist and a wheel, both with the licence
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--outdir", dist, source], env)
    (wheel,) = dist.glob("keyless-*-py3-none-any.whl")
    (sdist,) = dist.glob("keyless-*.tar.gz")
    license_text = (ROOT / "LICENSE").read_bytes()
    with zipfile.ZipFile(wheel) as whl:
        (licence,) = (n for n in whl.namelist() if n.endswith(".dist-info/licenses/LICENSE"))
        assert whl.read(licence) == license_text
        metadata = whl.read(next(n for n in whl.namelist() if n.endswith("/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    for package in SERVER_PACKAGES:
        assert [r for r in requires if package in r and 'extra == "server"' not in r] == []
    with tarfile.open(sdist) as tar:
        assert any(n.endswith("/LICENSE") for n in tar.getnames())
    now = _timed(times, "build", start)

    # 2. the bare wheel in a fresh venv: the client, and no server package
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], env)
    bin_ = venv / "bin"
    _run([bin_ / "python", "-m", "pip", "install", "--quiet", "--no-compile", wheel], env)
    now = _timed(times, "venv + client install", now)
    probe = "import importlib.util as u; print([n for n in %r if u.find_spec(n)])"
    done = _run([bin_ / "python", "-c", probe % (SERVER_PACKAGES,)], env)
    assert done.stdout.strip() == "[]"
    version = _run([bin_ / "keyless", "--version"], env).stdout.strip()
    assert version == f"keyless {wheel.name.split('-')[1]}"
    _run([bin_ / "keyless", "sign", "--help"], env)
    git_program = _run([bin_ / "keyless-git", "--version"], env).stdout  # git's x509 program
    assert git_program.startswith("keyless-git (keyless ")
    artifact = CASES / "a.txt"
    done = _run([bin_ / "keyless", "verify", artifact, "--offline",
                 "--bundle", CASES / "happy-path-v0.3" / "bundle.sigstore.json",
                 "--cert-identity", BEACON, "--cert-oidc-issuer", GHA], env)
    assert done.stderr.strip() == f"OK: {artifact}"
    digest = "sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest()
    refused = subprocess.run(
        [bin_ / "keyless", "verify", digest, "--offline",
         "--bundle", CASES / "happy-path-v0.3" / "bundle.sigstore.json",
         "--cert-identity", "someone@example.com", "--cert-oidc-issuer", GHA],
        capture_output=True, text=True, env=env, timeout=60, check=False)
    assert refused.returncode == 1, refused.stderr
    serve = subprocess.run([bin_ / "keyless", "serve"], capture_output=True, text=True, env=env,
                           timeout=60, check=False)
    assert (serve.returncode, serve.stdout) == (2, "")
    assert serve.stderr == "keyless serve: needs the server extra: pip install 'keyless[server]'\n"
    now = _timed(times, "client checks", now)

    # 3. add the server extra: keyless serve answers /healthz and stops cleanly on SIGTERM
    _run([bin_ / "python", "-m", "pip", "install", "--quiet", "--no-compile",
          f"{wheel}[server]"], env)
    now = _timed(times, "server install", now)
    port = free_port()
    data_dir = tmp_path / "data"
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [bin_ / "keyless", "serve", "--data-dir", data_dir, "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env | {"PYTHONUNBUFFERED": "1"})
    stack = RunningStack(process, port, data_dir, log_path, started_in=time.monotonic())
    try:
        wait_healthy(stack, timeout=60)
        # the explorer's templates and stylesheet are package data of the wheel
        home = httpx.get(f"{stack.url}/", timeout=10)
        assert home.status_code == 200 and "keyless log explorer" in home.text
        style = httpx.get(f"{stack.url}/explorer/static/style.css", timeout=10)
        assert style.status_code == 200 and style.text.startswith("body")
    finally:
        code = stack.stop()
    assert code == 0, stack.output()
    _timed(times, "serve to healthy + stop", now)
    times["total"] = time.monotonic() - start
    print("wheel test phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
