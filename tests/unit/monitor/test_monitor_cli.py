"""``keyless monitor`` command line: usage errors exit 2 in one line, other failures 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyless._cli.main import main


@pytest.mark.parametrize(("args", "problem"), [
    (["--state", "s.db"], "watch something"),
    (["--state", "s.db", "--identity", "a@b", "--webhook", "file:///etc/passwd"],
     "--webhook must be an http:// or https:// URL"),
    (["--state", "s.db", "--identity", "a@b", "--interval", "0"], "--interval must be"),
    (["--identity", "a@b"], "--state"),
    (["--state", "s.db", "--identity", "a@b", "--once", "--interval", "5"], "not allowed"),
])
def test_usage_errors(args: list[str], problem: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", *args]) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1


def test_unreadable_trust_and_state_fail_with_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["monitor", "--identity", "a@b", "--once", "--trust-config", str(tmp_path / "no.json"),
            "--state", str(tmp_path / "s.db")]
    assert main(args) == 1
    assert capsys.readouterr().err.startswith("monitor failed: ")
    (tmp_path / "tc.json").write_text(json.dumps({"nope": 1}))
    args[5] = str(tmp_path / "tc.json")
    assert main(args) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_bad_pattern_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.resources import files

    trusted_root = files("keyless") / "_data" / "trusted_root.json"
    (tmp_path / "tc.json").write_text(json.dumps({
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": json.loads(trusted_root.read_text()),
        "signingConfig": {"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json"},
    }))
    code = main(["monitor", "--identity-regexp", "(", "--once", "--trust-config",
                 str(tmp_path / "tc.json"), "--state", str(tmp_path / "s.db")])
    err = capsys.readouterr().err
    assert code == 1 and "--identity-regexp" in err and "Traceback" not in err
