"""``keyless sign FILE...`` (contracts.md §4): one certificate for all files, bundles v0.3.

::

    keyless sign FILE... [--bundle OUT] [--identity-token T] [--trust-config F | --server URL]
                 [--rekor-version 1|2] [--overwrite]

``--bundle`` (one file only) defaults to ``FILE.sigstore.json``. The services come from the
signing config of ``--trust-config``, of ``--server URL``'s TUF repository (pinned with ``keyless
trust-instance``, else trusted on first use), or of the public-good instance through TUF. Without
``--identity-token`` the token comes from
``$SIGSTORE_IDENTITY_TOKEN`` / ``$SIGSTORE_ID_TOKEN``, else ambient CI credentials, else (on a
terminal) the browser or device flow, as sigstore-python does.

Outputs are checked before anything is signed and, like sigstore-python, an existing bundle is
never replaced without ``--overwrite``; each bundle is written to a temporary file in the same
directory and renamed into place, so a reader never sees half a bundle. Progress is shown with
``rich`` when several files are signed on a terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from keyless._cli.verify import (
    ENVIRONMENT_HELP,
    STDIN,
    add_trust_options,
    apply_trust_environment,
    warn,
)

TOKEN_ENV = ("SIGSTORE_IDENTITY_TOKEN", "SIGSTORE_ID_TOKEN")


def add_signing_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``sign`` and ``attest``."""
    oidc = parser.add_argument_group("identity")
    oidc.add_argument(
        "--identity-token",
        metavar="T",
        help="OIDC identity token (JWT); default: $SIGSTORE_IDENTITY_TOKEN or "
        "$SIGSTORE_ID_TOKEN, else ambient CI credentials, else an interactive sign-in "
        "(browser, or device flow) with the signing config's OIDC issuer",
    )
    parser.add_argument(
        "--rekor-version",
        type=int,
        choices=(1, 2),
        help="use a Rekor v1 or v2 log (default: the newest the signing config offers)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing bundle files")
    add_trust_options(parser)


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(
        name,
        help=help_text,
        description="Sign each FILE with one short-lived certificate: the signature is "
        "timestamped and recorded in the transparency log, and written as a Sigstore bundle "
        "v0.3 (FILE.sigstore.json unless --bundle).",
        epilog="trust: --trust-config FILE or --server URL selects a keyless instance; with "
        "neither, the public-good Sigstore instance (signing config through TUF).\n\n"
        "standard input: `keyless sign - --bundle OUT` signs what it reads (there is no FILE "
        "to name the bundle after, so --bundle is required); with stdin taken, the token "
        "must come from --identity-token, the environment or CI, not an interactive sign-in."
        f"\n\n{ENVIRONMENT_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "files", metavar="FILE", nargs="+", help="files to sign; - signs standard input"
    )
    parser.add_argument(
        "--bundle",
        metavar="OUT",
        help="write the bundle here (one FILE only; required when FILE is -)",
    )
    add_signing_options(parser)
    parser.set_defaults(run=run, parser=parser)


# --- outputs --------------------------------------------------------------------------------------


def check_input(args: argparse.Namespace, path: str) -> None:
    """A FILE must be a readable regular file (usage error otherwise, as sigstore-python)."""
    if path == STDIN:
        return
    if not Path(path).is_file():
        args.parser.error(f"{path} is not a file")
    if not os.access(path, os.R_OK):
        args.parser.error(f"{path} is not readable")


def check_output(args: argparse.Namespace, out: str, inputs: set[str]) -> None:
    """Refuse to replace an input, a directory, or (without --overwrite) an existing bundle."""
    target = Path(out)
    if os.path.realpath(out) in inputs:
        args.parser.error(f"the bundle {out} would replace an input file")
    if target.is_dir():
        args.parser.error(f"the bundle {out} is a directory")
    if target.exists() and not args.overwrite:
        args.parser.error(f"refusing to overwrite {out} without --overwrite")
    if not target.parent.is_dir():
        args.parser.error(f"the directory of {out} does not exist")
    if not os.access(target.parent, os.W_OK):
        args.parser.error(f"cannot write to the directory of {out}")


def plan_outputs(args: argparse.Namespace, files: list[str]) -> dict[str, str]:
    """FILE → bundle path, checked before any network call or signature."""
    if args.bundle and len(files) > 1:
        args.parser.error("--bundle can only be used with a single FILE")
    if STDIN in files and len(files) > 1:
        args.parser.error("- (standard input) can only be signed alone")
    if files == [STDIN] and not args.bundle:
        args.parser.error("--bundle OUT is required when signing standard input (-)")
    if args.bundle == STDIN:
        args.parser.error("--bundle must be a file, not - (standard output)")
    seen: set[str] = set()
    for f in files:
        check_input(args, f)
        real = os.path.realpath(f)
        if real in seen:
            args.parser.error(f"{f} is given twice")
        seen.add(real)
    outputs = {f: args.bundle or f"{f}.sigstore.json" for f in files}
    for out in outputs.values():
        check_output(args, out, seen)
    return outputs


def write_output(path: str, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` atomically: a temporary file in the same directory, then a rename.

    Without ``overwrite`` the final step is a hard link, which fails if ``path`` appeared in
    the meantime (no check-then-write race); the mode is the usual ``0666 & ~umask``.
    """
    import secrets

    from keyless.errors import ConfigError

    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)
        except FileExistsError as exc:
            raise ConfigError(f"{path} appeared meanwhile; not overwritten") from exc
        except OSError:  # a filesystem without hard links
            if target.exists():
                raise ConfigError(f"{path} appeared meanwhile; not overwritten") from None
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# --- signer ---------------------------------------------------------------------------------------


def identity_token(args: argparse.Namespace, signing_config: Any = None) -> str:
    """The identity token: flag, environment, ambient CI credentials, or (on a terminal) the
    browser / device flow against the signing config's OIDC issuer (contracts.md §4)."""
    from keyless.oidc import get_identity_token

    oidc_urls = getattr(signing_config, "oidc_urls", ()) or ()
    issuer = oidc_urls[0].url if oidc_urls else None
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    explicit = args.identity_token or next(
        (os.environ[name] for name in TOKEN_ENV if os.environ.get(name)), None
    )
    token = get_identity_token(
        explicit=explicit, issuer=issuer, interactive="auto" if interactive else "none"
    )
    return token.raw


def make_signer(args: argparse.Namespace) -> Any:
    """A :class:`keyless.sign.Signer` from the trust options."""
    from keyless.errors import ConfigError
    from keyless.sign import Signer
    from keyless.trust.sources import resolve_trust

    apply_trust_environment(args)
    config = resolve_trust(
        trust_config=args.trust_config,
        server=args.server,
        allow_insecure_http=args.allow_insecure_http,
        tuf_cache=args.tuf_cache,
        refresh_window=args.tuf_refresh_window,
        on_warning=warn,
    )
    if config.signing_config is None:
        if args.trust_config is None and args.server is None:
            raise ConfigError(
                "no signing config for the public-good instance is available (the TUF refresh "
                "did not provide one); give --trust-config FILE or --server URL"
            )
        raise ConfigError("the trust config has no signing config")
    return Signer.from_client_trust_config(
        config,
        identity_token=identity_token(args, config.signing_config),
        rekor_version=args.rekor_version,
    )


def read_stdin_digest() -> bytes:
    """SHA-256 of standard input, read in chunks (an artifact may be large)."""
    import hashlib

    h = hashlib.sha256()
    while chunk := sys.stdin.buffer.read(1 << 20):
        h.update(chunk)
    return h.digest()


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def run(args: argparse.Namespace) -> int:
    from keyless.errors import Error
    from keyless.sign import sign_files

    outputs = plan_outputs(args, args.files)
    apply_trust_environment(args)
    done: list[str] = []
    # read standard input before any network call: the signature covers what was read
    stdin_digest = read_stdin_digest() if args.files == [STDIN] else b""

    def write(path: str, bundle: Any) -> None:
        write_output(outputs[path], bundle.to_bytes(), overwrite=args.overwrite)
        done.append(path)

    try:
        signer = make_signer(args)
        if len(args.files) > 1 and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import Progress

            with Progress(console=Console(stderr=True), transient=True) as progress:
                task = progress.add_task("signing", total=len(args.files))

                def advance(path: str, bundle: Any) -> None:
                    write(path, bundle)
                    progress.advance(task)

                sign_files(signer, args.files, on_done=advance)
        elif args.files == [STDIN]:
            write(STDIN, signer.sign_digest(stdin_digest))
        else:
            sign_files(signer, args.files, on_done=write)
    except (Error, OSError) as exc:
        partial = f" ({len(done)} of {len(args.files)} bundles written)" if done else ""
        print(f"signing failed: {one_line(exc)}{partial}", file=sys.stderr)
        return 1
    for f in args.files:
        print(f"signed {f} -> {outputs[f]}", file=sys.stderr)
    return 0
