"""The CA over real HTTP (uvicorn, free port) against sigstore-python 4.5.1 and sigstore-js 5.0.1.

Each client obtains a certificate with its own request code (python: CSR + bearer; js:
publicKeyRequest + proof of possession, token in the body) and then runs its own verification
logic over it: chain to the trusted root's CA, exactly one SCT verified with the trusted root's
CT key, identity (SAN) and issuer policy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from keyless.http.errors import EXCEPTION_HANDLERS
from keyless.services.ca.routes import routes as ca_routes
from keyless.services.ctlog.routes import routes as ctlog_routes

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "ca"))
from ca_testkit import GITHUB_CLAIMS, CAStack, UvicornThread, build_stack, trusted_root

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CAStack, str, Path]]:
    tmp = tmp_path_factory.mktemp("ca-clients")
    stack = build_stack(tmp / "ca")
    app = Starlette(
        routes=[*ca_routes(stack.ca),
                Mount("/ctlog", routes=ctlog_routes(stack.ctlog))],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    with UvicornThread(app) as url:
        tr = tmp / "trusted_root.json"
        tr.write_text(json.dumps(trusted_root(stack, url, url + "/ctlog")))
        yield stack, url, tr


def _run(cmd: list[str], token: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        cmd, check=False, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {}), "TOKEN": token},
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result line; stdout={proc.stdout!r} stderr={proc.stderr[-2000:]!r}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def test_sigstore_python_obtains_and_verifies_certificate(
    served: tuple[CAStack, str, Path], sigstore_python: Path
) -> None:
    stack, url, tr = served
    python = sigstore_python.parent / "python"
    token = stack.issuers["email"].token()
    result = _run([str(python), str(HERE / "sigstore_python_check.py"), url, str(tr),
                   "alice@example.com", "https://issuer.test"], token)
    assert result["ok"], result["error"]


def test_sigstore_python_rejects_the_wrong_issuer_policy(
    served: tuple[CAStack, str, Path], sigstore_python: Path
) -> None:
    """The check script can fail: a policy naming another issuer is refused."""
    stack, url, tr = served
    python = sigstore_python.parent / "python"
    token = stack.issuers["email"].token()
    result = _run([str(python), str(HERE / "sigstore_python_check.py"), url, str(tr),
                   "alice@example.com", "https://other.test"], token)
    assert not result["ok"]
    assert "issuer" in result["error"].lower() or "1.3.6.1.4.1.57264.1.1" in result["error"]


def test_sigstore_js_obtains_and_verifies_certificate(
    served: tuple[CAStack, str, Path], node_path: Path
) -> None:
    stack, url, tr = served
    token = stack.issuers["email"].token()
    result = _run(["node", str(HERE / "sigstore_js_check.js"), url, str(tr),
                   "alice@example.com", "https://issuer.test"], token,
                  {"NODE_PATH": str(node_path)})
    assert result["ok"], result["error"]
    # gotcha 3: the PEM sigstore-js received is exactly the standard 64-column form
    pem = result["pem"]
    assert pem.endswith("-----END CERTIFICATE-----\n")
    assert all(len(line) == 64 for line in pem.split("\n")[1:-3])


def test_sigstore_js_github_identity(
    served: tuple[CAStack, str, Path], node_path: Path
) -> None:
    """Non-email issuer: sigstore-js signs the PoP over ``sub``; SAN is the workflow URI."""
    stack, url, tr = served
    token = stack.issuers["github"].token(email=None, email_verified=None, **GITHUB_CLAIMS)
    san = "https://github.com/" + GITHUB_CLAIMS["job_workflow_ref"]
    result = _run(["node", str(HERE / "sigstore_js_check.js"), url, str(tr), san,
                   "https://token.actions.githubusercontent.com"], token,
                  {"NODE_PATH": str(node_path)})
    assert result["ok"], result["error"]


def test_sigstore_js_refuses_a_trust_root_without_our_ct_key(
    served: tuple[CAStack, str, Path], node_path: Path, tmp_path: Path
) -> None:
    stack, url, tr = served
    doc = json.loads(tr.read_text())
    doc["ctlogs"] = []
    other = tmp_path / "tr.json"
    other.write_text(json.dumps(doc))
    result = _run(["node", str(HERE / "sigstore_js_check.js"), url, str(other),
                   "alice@example.com", "https://issuer.test"], stack.issuers["email"].token(),
                  {"NODE_PATH": str(node_path)})
    assert not result["ok"]


def test_ct_log_serves_the_issued_precertificates(served: tuple[CAStack, str, Path]) -> None:
    _stack, url, _ = served
    with httpx.Client(base_url=url + "/ctlog") as c:
        sth = c.get("/ct/v1/get-sth").json()
        assert sth["tree_size"] >= 2
        roots = c.get("/ct/v1/get-roots").json()["certificates"]
        assert len(roots) == 1
        assert c.get("/checkpoint").text.startswith("localhost/ctlog\n")


def test_sigstore_python_github_identity(
    served: tuple[CAStack, str, Path], sigstore_python: Path
) -> None:
    """sigstore-python's policy reads the raw .1 issuer extension (interop.md §5 item 7)."""
    stack, url, tr = served
    python = sigstore_python.parent / "python"
    token = stack.issuers["github"].token(email=None, email_verified=None, **GITHUB_CLAIMS)
    san = "https://github.com/" + GITHUB_CLAIMS["job_workflow_ref"]
    result = _run([str(python), str(HERE / "sigstore_python_check.py"), url, str(tr), san,
                   "https://token.actions.githubusercontent.com"], token)
    assert result["ok"], result["error"]
