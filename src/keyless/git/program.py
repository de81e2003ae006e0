"""``keyless-git``: the signing program git runs for ``gpg.format = x509`` (docs/git.md).

git speaks gpgsm's command line to it (git ``gpg-interface.c``, measured with git 2.39)::

    keyless-git --status-fd=2 -bsau KEY          payload on stdin, armored signature on stdout,
                                                 [GNUPG:] status lines on fd 2
    keyless-git --status-fd=1 --verify SIGFILE -  payload on stdin, status on fd 1, text on stderr

Signing ignores KEY (git passes ``user.signingkey`` or the committer): the identity is the one
the OIDC token names. Verification reports, after ``NEWSIG`` (git needs GOODSIG after a newline):

* ``GOODSIG <fpr> <identity>`` + ``VALIDSIG`` + ``TRUST_FULLY``, exit 0 — valid, and signed by
  the expected identity (``git config keyless.identity`` / ``keyless.issuer``): ``%G?`` = G;
* ``GOODSIG`` + ``TRUST_UNDEFINED``, exit 1 — valid, but no expected identity is configured, so
  nobody vouches for the signer: ``%G?`` = U and ``git verify-commit`` fails (fail closed);
* ``BADSIG <fpr> <identity>`` + ``TRUST_NEVER``, exit 1 — another signer than the expected one,
  or a signature that does not verify (changed content, bad proof, untrusted CA...): ``%G?`` = B;
* ``ERRSIG`` + ``TRUST_UNDEFINED``, exit 1 — it cannot be checked (unreadable signature, no
  embedded log entry, unusable trust configuration): ``%G?`` = E.

A TRUST_ line is always present (git 2.39 aborts ``%GT`` without one). The human explanation
goes to stderr, which ``git verify-commit`` and ``git log --show-signature`` show. Imports are
deferred: git starts this program once per signed object.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = ["Invocation", "main", "parse_args"]

#: a signature file git wrote for us; anything bigger is not ours
_MAX_SIGFILE = 1 << 20
#: a commit or tag payload; git objects can be large but not unbounded
_MAX_PAYLOAD = 64 << 20
_NO_KEY = "0000000000000000"


class UsageError(Exception):
    pass


@dataclass
class Invocation:
    status_fd: int | None = None
    sign: bool = False
    detach: bool = False
    armor: bool = False
    local_user: str | None = None
    verify: bool = False
    files: list[str] = field(default_factory=list)
    version: bool = False


_LONG_FLAGS = {
    "--sign": "sign",
    "--detach-sign": "detach",
    "--detached-sign": "detach",
    "--armor": "armor",
    "--verify": "verify",
    "--version": "version",
}
_LONG_VALUES = {"--status-fd", "--local-user", "--include-certs", "--user"}
_SHORT = {"b": "detach", "s": "sign", "a": "armor", "v": "verify"}


def _set_value(inv: Invocation, name: str, value: str) -> None:
    if name == "--status-fd":
        try:
            inv.status_fd = int(value)
        except ValueError:
            raise UsageError(f"--status-fd needs a file descriptor number, not {value!r}") from None
        if inv.status_fd < 0:
            raise UsageError("--status-fd needs a non-negative file descriptor")
    elif name in ("--local-user", "--user"):
        inv.local_user = value
    # --include-certs: accepted and ignored (the leaf is always included)


def parse_args(argv: Sequence[str]) -> Invocation:
    """gpgsm's options as git (and gitsign users) pass them; unknown options are ignored."""
    inv = Invocation()
    words = list(argv)
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            inv.files.extend(words[i:])
            break
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            if name in _LONG_VALUES:
                if not eq:
                    if i >= len(words):
                        raise UsageError(f"{name} needs a value")
                    value = words[i]
                    i += 1
                _set_value(inv, name, value)
            elif name in _LONG_FLAGS:
                setattr(inv, _LONG_FLAGS[name], True)
            continue  # other gpgsm options are accepted and ignored, as gitsign does
        if word.startswith("-") and word != "-":
            cluster = word[1:]
            for j, letter in enumerate(cluster):
                if letter == "u":
                    rest = cluster[j + 1 :]
                    if rest:
                        inv.local_user = rest
                    elif i < len(words):
                        inv.local_user = words[i]
                        i += 1
                    else:
                        raise UsageError("-u needs a key")
                    break
                if letter in _SHORT:
                    setattr(inv, _SHORT[letter], True)
            continue
        inv.files.append(word)
    return inv


class Status:
    """``[GNUPG:]`` lines on the status file descriptor (nowhere without --status-fd)."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def __call__(self, line: str) -> None:
        if self.fd is None:
            return
        data = f"[GNUPG:] {_clean(line)}\n".encode()
        if self.fd in (1, 2):
            stream = sys.stdout if self.fd == 1 else sys.stderr
            stream.flush()
        os.write(self.fd, data)


def _clean(text: str) -> str:
    """Text from a signature (an identity, an error naming it) made safe for one status or
    terminal line: control characters could forge a status line or drive the terminal."""
    return "".join(c if c.isprintable() else "?" for c in " ".join(text.split()))


def _say(message: str) -> None:
    sys.stderr.write(f"keyless-git: {_clean(message)}\n")
    sys.stderr.flush()


def _tell_terminal(message: str) -> None:
    """git keeps the stderr of a failed signing to itself (it is the status channel), so the
    reason goes to the terminal as well, when there is one."""
    try:
        with open("/dev/tty", "w") as tty:
            tty.write(f"keyless-git: {_clean(message)}\n")
    except OSError:
        pass


def _read_limited(stream: IO[bytes], limit: int, what: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise UsageError(f"the {what} is larger than {limit >> 20} MiB")
    return data


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --- sign -----------------------------------------------------------------------------------------


def _sign(inv: Invocation, status: Status) -> int:
    from keyless.errors import Error
    from keyless.git.config import settings
    from keyless.git.signing import sign_payload
    from keyless.git.verifying import fingerprint

    payload = _read_limited(sys.stdin.buffer, _MAX_PAYLOAD, "payload")
    status("BEGIN_SIGNING")
    try:
        signed = sign_payload(payload, settings(), on_warning=lambda m: _say(f"warning: {m}"))
    except Error as exc:
        _say(f"signing failed: {_one_line(exc)}")
        _tell_terminal(f"signing failed: {_one_line(exc)}")
        return 1
    sys.stdout.buffer.write(signed.armored)
    sys.stdout.buffer.flush()
    when = int(signed.signed_at.timestamp())
    # D: detached; 19: ECDSA; 8: SHA-256 (OpenPGP numbers, as gitsign reports them)
    status(f"SIG_CREATED D 19 8 00 {when} {fingerprint(signed.certificate)}")
    reused = " (reused certificate)" if signed.reused_certificate else ""
    _say(f"signed; transparency log index {signed.log_index}{reused}")
    return 0


# --- verify ---------------------------------------------------------------------------------------


def _verifier(git_settings: Any) -> Any:
    from keyless.verify import Verifier

    if git_settings.trust_config:
        return Verifier.from_trust_config(git_settings.trust_config)
    warn = lambda m: _say(f"warning: {m}")  # noqa: E731
    if git_settings.server:
        return Verifier.for_instance(git_settings.server, on_warning=warn)
    return Verifier.production(on_warning=warn)


def _policy(git_settings: Any) -> Any:
    from keyless.errors import ConfigError
    from keyless.verify import Identity

    if git_settings.identity is None and git_settings.issuer is None:
        return None
    if git_settings.identity is None or git_settings.issuer is None:
        raise ConfigError("set both keyless.identity and keyless.issuer (git config)")
    return Identity(identity=git_settings.identity, issuer=git_settings.issuer)


def _verify(inv: Invocation, status: Status) -> int:
    from cryptography import x509

    from keyless.errors import ConfigError, Error, InvalidInput
    from keyless.git.config import settings
    from keyless.git.verifying import fingerprint, prepare, verify_prepared
    from keyless.verify.errors import MalformedBundleError, MissingInclusionProofError

    if len(inv.files) != 2 or inv.files[1] != "-":
        raise UsageError("--verify needs SIGFILE - (the payload comes on stdin)")
    try:
        with open(inv.files[0], "rb") as f:
            signature = _read_limited(f, _MAX_SIGFILE, "signature")
    except OSError as exc:
        raise UsageError(f"cannot read {inv.files[0]}: {exc.strerror}") from exc
    payload = _read_limited(sys.stdin.buffer, _MAX_PAYLOAD, "payload")
    status("NEWSIG")
    now = int(time.time())
    signer = _NO_KEY
    try:
        prepared = prepare(signature, payload)  # offline and cheap: before any trust is loaded
        signer = fingerprint(x509.load_der_x509_certificate(prepared.certificate_der))
        git_settings = settings()
        policy = _policy(git_settings)
        verified = verify_prepared(_verifier(git_settings), prepared, policy)
    except (ConfigError, InvalidInput, MalformedBundleError, MissingInclusionProofError) as exc:
        status(f"ERRSIG {signer} 19 8 00 {now} 9")
        status("TRUST_UNDEFINED 0 keyless")
        _say(f"cannot check the signature: {_one_line(exc)}")
        return 1
    except Error as exc:
        status(f"BADSIG {signer} (invalid signature)")
        status("TRUST_NEVER 0 keyless")
        _say(f"BAD signature: {_one_line(exc)}")
        return 1
    fpr = verified.fingerprint
    who = f"{verified.identity} ({verified.issuer})"
    logged = (
        f"signed at {verified.signed_at:%Y-%m-%d %H:%M:%S} UTC, "
        f"transparency log index {verified.log_index}"
    )
    if verified.identity_ok is False:
        status(f"BADSIG {fpr} {verified.identity}")
        status("TRUST_NEVER 0 keyless")
        _say(f"signature by {who} is not from the expected signer: {verified.identity_problem}")
        return 1
    status(f"GOODSIG {fpr} {verified.identity}")
    when = int(verified.signed_at.timestamp())
    status(f"VALIDSIG {fpr} {verified.signed_at:%Y-%m-%d} {when} 0 0 0 19 8 00 {fpr}")
    if verified.identity_ok is None:
        status("TRUST_UNDEFINED 0 keyless")
        _say(f"valid signature by {who}, {logged}")
        _say(
            "but no expected signer is configured (git config keyless.identity and "
            "keyless.issuer), so it is not trusted"
        )
        return 1
    status("TRUST_FULLY 0 keyless")
    _say(f"Good signature by {who}, {logged}")
    return 0


# --- entry point ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``keyless-git`` and return its exit status (0 ok, 1 failed, 2 usage)."""
    debug = os.environ.get("KEYLESS_DEBUG", "") not in ("", "0")
    # httpx imports its own command-line client (click, pygments, rich) when they are installed;
    # this program never uses it, and it would cost ~0.4 s of every commit. A None entry makes
    # that optional import fail, which httpx handles by leaving its CLI out.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    try:
        inv = parse_args(sys.argv[1:] if argv is None else argv)
        if inv.version:
            from keyless import __version__

            print(f"keyless-git (keyless {__version__}), gpgsm-compatible for git")
            return 0
        status = Status(inv.status_fd)
        if inv.verify:
            return _verify(inv, status)
        if inv.sign:
            if not inv.detach:
                raise UsageError("only detached signatures (-b) are supported")
            return _sign(inv, status)
        raise UsageError("give -bsau KEY (sign) or --verify SIGFILE - (as git does)")
    except UsageError as exc:
        _say(f"usage: {exc}")
        return 2
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except Exception as exc:
        if debug:
            raise
        _say(
            f"unexpected error ({type(exc).__name__}: {_one_line(exc)}); rerun with "
            "KEYLESS_DEBUG=1 for details"
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
