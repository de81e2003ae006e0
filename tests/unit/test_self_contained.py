"""The repository is self-contained: no tracked file reads material from outside the clone.

Test vectors live in tests/assets/, the pins of the real clients in tests/interop/ (issue #17);
a path into a sibling folder of the checkout (the old reference folder) would make a fresh clone
fail or skip its tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from conftest import ROOT, VECTORS

#: a path into the old reference folder beside the checkout, or the variable that located it
#: (spelled so that this file does not match itself)
OUTSIDE = re.compile(rb"\.\./shared\b|/shared/(?:vectors|interop|docs)\b|KEYLESS_SHARE[D]")


#: what a source tree without git holds besides the project's files (environments, outputs)
UNTRACKED = re.compile(r"^\.|^(build|dist|__pycache__)$|\.egg-info$")


def _tracked_files() -> list[Path]:
    """``git ls-files``; in an exported tree without git, every file outside environments."""
    git = shutil.which("git")
    if git is not None and (ROOT / ".git").exists():
        out = subprocess.run([git, "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        return [ROOT / name for name in out.stdout.decode().split("\0") if name]
    found = []
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = [d for d in subdirs if not UNTRACKED.search(d)]
        found += [Path(directory) / name for name in files]
    return found


def test_no_tracked_file_refers_outside_the_repository() -> None:
    files = _tracked_files()
    assert len(files) > 100
    offenders = [
        str(path.relative_to(ROOT))
        for path in files
        if path.is_file() and OUTSIDE.search(path.read_bytes())
    ]
    assert offenders == []


def test_every_vendored_asset_has_its_source_in_the_readme() -> None:
    """tests/assets/README.md names each top-level asset file or folder it vendors."""
    readme = (VECTORS / "README.md").read_text()
    for path in VECTORS.rglob("*"):
        if path.is_file() and path.parent.name in ("sigstore-python", "production", "staging"):
            assert f"`{path.name}`" in readme or f"/{path.name}`" in readme, path
    for folder in ("conformance/", "sigstore-python/", "public-good/production/",
                   "public-good/staging/"):
        assert f"`{folder}`" in readme, folder
