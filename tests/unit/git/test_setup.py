"""``keyless git setup`` with Debian's git, in a temporary HOME."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import ROOT

KEYLESS = ROOT / ".venv" / "bin" / "keyless"


def run(cwd: Path, home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "KEYLESS_"))}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
    return subprocess.run([*argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_global_setup(tmp_path: Path) -> None:
    done = run(tmp_path, tmp_path, str(KEYLESS), "git", "setup", "--global", "--server",
               "https://keyless.example.com")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote to your global git configuration:\n")
    assert "keyless.identity" in done.stdout  # the hint to configure the expected signer
    config = (tmp_path / ".gitconfig").read_text()
    for text in ("format = x509", f"program = {KEYLESS.parent / 'keyless-git'}",
                 "gpgsign = true", "server = https://keyless.example.com"):
        assert text in config


def test_setup_outside_a_repository_or_half_an_identity(tmp_path: Path) -> None:
    done = run(tmp_path, tmp_path, str(KEYLESS), "git", "setup")
    assert done.returncode == 1 and "git config gpg.format failed" in done.stderr
    half = run(tmp_path, tmp_path, str(KEYLESS), "git", "setup", "--identity", "a@b")
    assert half.returncode == 2 and "--identity and --issuer together" in half.stderr
    assert not (tmp_path / ".gitconfig").exists()
