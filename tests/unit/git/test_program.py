"""``keyless-git``'s gpgsm command line, as git 2.39 and gitsign users pass it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from keyless.git.program import UsageError, main, parse_args


def test_git_sign_invocation() -> None:
    inv = parse_args(["--status-fd=2", "-bsau", "Alice <alice@example.com>"])
    assert (inv.status_fd, inv.detach, inv.sign, inv.armor) == (2, True, True, True)
    assert inv.local_user == "Alice <alice@example.com>" and not inv.verify and inv.files == []


def test_git_verify_invocation() -> None:
    inv = parse_args(["--status-fd=1", "--verify", "/tmp/.git_vtag_tmpXYZ", "-"])
    assert inv.status_fd == 1 and inv.verify and inv.files == ["/tmp/.git_vtag_tmpXYZ", "-"]


@pytest.mark.parametrize("argv", [
    ["--status-fd", "2", "-b", "-s", "-a", "-u", "KEY"],
    ["--status-fd=2", "--detach-sign", "--sign", "--armor", "--local-user", "KEY"],
    ["--status-fd=2", "--detached-sign", "-s", "--local-user=KEY", "--include-certs", "-2"],
    ["--status-fd=2", "-bsauKEY", "--unknown-gpgsm-flag", "--keyid-format=long"],
])
def test_equivalent_spellings(argv: list[str]) -> None:
    inv = parse_args(argv)
    assert (inv.status_fd, inv.detach, inv.sign, inv.local_user) == (2, True, True, "KEY")


@pytest.mark.parametrize("argv", [["--status-fd=x"], ["--status-fd=-1"], ["--status-fd"],
                                  ["-bsau"], ["--local-user"]])
def test_bad_command_lines(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_args(argv)


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--status-fd=2"]) == 2
    assert main(["--status-fd=1", "--verify", "sig"]) == 2  # no "-": the payload is on stdin
    assert main(["-sa", "--status-fd=2"]) == 2  # not detached
    err = capsys.readouterr().err
    assert err.count("keyless-git: usage:") == 3 and "Traceback" not in err


def test_cold_start_imports_nothing_heavy() -> None:
    """git starts the program once per commit: importing it costs only the standard library."""
    code = ("import sys; import keyless.git.program; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'cryptography', 'httpx', 'asn1crypto', 'tuf', 'rich', 'rfc3161_client', 'jwt'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]"


def test_status_and_messages_cannot_be_forged(capfd: pytest.CaptureFixture[str]) -> None:
    """An identity is attacker-influenced text: no newline or escape reaches git or a terminal."""
    from keyless.git.program import Status, _say

    Status(1)("GOODSIG ABC evil\n[GNUPG:] GOODSIG X \x1b[2Jme")
    _say("signature by evil\n[GNUPG:] TRUST_ULTIMATE\x07")
    out, err = capfd.readouterr()
    assert out == "[GNUPG:] GOODSIG ABC evil [GNUPG:] GOODSIG X ?[2Jme\n"
    assert err == "keyless-git: signature by evil [GNUPG:] TRUST_ULTIMATE?\n"


def test_signing_does_not_load_httpx_command_line_client() -> None:
    """httpx would import click, pygments and rich for its own CLI: ~0.4 s of every commit."""
    code = ("import sys; from keyless.git.program import main; "
            "main(['--version']); import httpx; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'click', 'pygments'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("signature", [
    b"", b"garbage", b"-----BEGIN SIGNED MESSAGE-----\nAAAA\n-----END SIGNED MESSAGE-----\n",
    b"\x30\x80" + b"\x00" * 64,
])
def test_unreadable_signature_is_errsig(tmp_path: object, signature: bytes) -> None:
    """Read before any trust is loaded: no trust configured, no network, still a clean ERRSIG."""
    from pathlib import Path

    sig = Path(str(tmp_path)) / "sig"
    sig.write_bytes(signature)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    done = subprocess.run(
        [sys.executable, "-m", "keyless.git.program", "--status-fd=1", "--verify", str(sig), "-"],
        input=b"tree 0\n", capture_output=True, timeout=60, check=False, env=env,
        cwd=str(tmp_path))
    assert done.returncode == 1
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "[GNUPG:] NEWSIG"
    assert lines[1].startswith("[GNUPG:] ERRSIG 0000000000000000 ")
    assert lines[2] == "[GNUPG:] TRUST_UNDEFINED 0 keyless"
    assert b"cannot check the signature" in done.stderr and b"unexpected" not in done.stderr
