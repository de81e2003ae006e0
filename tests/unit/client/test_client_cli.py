"""``keyless verify`` / ``sign`` command-line behaviour (contracts.md §4): exit codes, one
sentence on stderr, and an offline path that imports no network library and opens no socket."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _client_vectors import BEACON, CASES, GHA, SP, VECTORS, vectors_present

from keyless._cli.main import main

HAPPY = CASES / "happy-path-v0.3" / "bundle.sigstore.json"
ARTIFACT = CASES / "a.txt"

PROBE = r"""
import json, socket, sys
def refuse(*args, **kwargs):
    raise SystemExit("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
from keyless._cli.main import main
rc = main(json.loads(sys.argv[1]))
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"httpx", "tuf", "rich", "urllib3",
                                                          "requests", "starlette", "uvicorn"})
print(json.dumps([rc, heavy]))
"""


def _probe(argv: list[str]) -> tuple[int, list[str], str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.stdout, proc.stderr
    rc, heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    return rc, heavy, proc.stderr


def _verify_argv(bundle: str, *extra: str) -> list[str]:
    return ["verify", str(ARTIFACT), "--bundle", bundle, "--cert-identity", BEACON,
            "--cert-oidc-issuer", GHA, *extra]


def test_offline_verify_is_lean_and_makes_no_network_call() -> None:
    vectors_present()
    rc, heavy, err = _probe(_verify_argv(str(HAPPY), "--offline"))
    assert rc == 0, err
    assert heavy == [], f"offline verify imported {heavy}"
    assert err.strip().startswith("OK:")


def test_trust_config_verify_is_lean(tmp_path: pytest.TempPathFactory) -> None:
    vectors_present()
    tc = tmp_path / "tc.json"  # type: ignore[operator]
    tc.write_text(json.dumps({
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": json.loads((VECTORS / "public-good/staging/trusted_root.json").read_text()),
    }))
    rc, heavy, err = _probe(
        ["verify", str(SP / "staging-rekor-v2.txt"), "--bundle",
         str(SP / "staging-rekor-v2.txt.sigstore.json"), "--cert-identity", "jku@goto.fi",
         "--cert-oidc-issuer", "https://github.com/login/oauth", "--trust-config", str(tc)]
    )
    assert (rc, heavy) == (0, []), err


def test_failed_verify_says_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    vectors_present()
    wrong = CASES / "wrong-material_fail" / "artifact"
    rc = main(["verify", str(wrong), "--bundle", str(HAPPY), "--cert-identity", BEACON,
               "--cert-oidc-issuer", GHA, "--offline"])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert err.startswith("verification failed:") and "\n" not in err


def test_verify_by_digest_needs_bundle(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["verify", "sha256:" + "0" * 64, "--cert-identity", BEACON,
               "--cert-oidc-issuer", GHA, "--offline"])
    assert rc == 2
    assert "--bundle is required" in capsys.readouterr().err


def test_verify_needs_identity_or_key(capsys: pytest.CaptureFixture[str]) -> None:
    vectors_present()
    rc = main(["verify", str(ARTIFACT), "--bundle", str(HAPPY), "--offline"])
    assert rc == 2
    assert "--cert-identity" in capsys.readouterr().err


def test_managed_key_verify(capsys: pytest.CaptureFixture[str]) -> None:
    vectors_present()
    case = CASES / "managed-key-happy-path"
    rc = main(["verify", str(ARTIFACT), "--bundle", str(case / "bundle.sigstore.json"),
               "--key", str(case / "key.pub"), "--offline"])
    assert rc == 0, capsys.readouterr().err


def test_verify_attestation_rejects_message_signature(capsys: pytest.CaptureFixture[str]) -> None:
    vectors_present()
    rc = main(["verify-attestation", *_verify_argv(str(HAPPY), "--offline")[1:]])
    assert rc == 1
    assert "not an attestation" in capsys.readouterr().err
