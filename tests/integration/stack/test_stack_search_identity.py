"""The wiring hands the search index this instance's CAs (issue #13 defect 6): an entry signed
with a certificate from the stack's own CA is found by its identity on a real ``keyless serve``."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from stackutil import KEYLESS, USER, start_stack

pytestmark = pytest.mark.integration


def test_an_entry_signed_under_our_ca_is_found_by_identity(tmp_path: Path) -> None:
    stack = start_stack(tmp_path / "data")
    try:
        artifact = tmp_path / "a.txt"
        artifact.write_bytes(b"findable by who signed it\n")
        signed = subprocess.run(
            [str(KEYLESS), "sign", str(artifact), "--identity-token", stack.token(),
             "--server", stack.url], capture_output=True, text=True, timeout=120, check=False)
        assert signed.returncode == 0, signed.stderr
        bundle = json.loads((tmp_path / "a.txt.sigstore.json").read_text())
        logged = int(bundle["verificationMaterial"]["tlogEntries"][0]["logIndex"])
        found: list[int] = []
        deadline = time.monotonic() + 30  # the index is written just after the acknowledgement
        while not found and time.monotonic() < deadline:
            for path, index_of in (
                ("/rekor/api/v2/search", lambda e: int(e["logIndex"])),
                ("/api/v1/search", lambda e: int(next(iter(e.values()))["logIndex"])),
            ):
                answer = httpx.get(stack.url + path, timeout=10,
                                   params={"identity": USER, "issuer": stack.issuer})
                assert answer.status_code == 200, answer.text
                found += [index_of(e) for e in answer.json()["entries"]]
            if not found:
                time.sleep(0.2)
        assert found == [logged], stack.output()[-2000:]
    finally:
        assert stack.stop() == 0, stack.output()
