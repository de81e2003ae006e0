"""The client (``pip install keyless``, no extra) never imports the server packages (issue #17).

Starlette, uvicorn and psycopg come with ``keyless[server]`` only. Every import statement of the
client modules (also the lazy ones inside functions) is followed through keyless's own modules;
none may reach those packages. A second test runs the client commands in a process where importing
them fails, as in a bare install.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

SRC = ROOT / "src"
SERVER_PACKAGES = frozenset({"starlette", "uvicorn", "psycopg", "prometheus_client"})
#: the client's entry points: library API and the client commands
CLIENT_ROOTS = (
    "keyless.sign", "keyless.verify", "keyless.trust", "keyless.oidc", "keyless.formats",
    "keyless.merkle", "keyless._cli.verify", "keyless._cli.sign", "keyless._cli.attest",
    "keyless._cli.main", "keyless.image", "keyless.image_legacy", "keyless.oci",
    "keyless._cli.image",
    "keyless.git", "keyless._cli.git",
)


def _file_of(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_files(module: str) -> list[Path]:
    """A package's every module (a client package is used whole), or the module's own file."""
    base = SRC.joinpath(*module.split("."))
    if base.is_dir():
        return sorted(base.rglob("*.py"))
    found = _file_of(module)
    return [found] if found else []


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module an ``import`` anywhere in the file names (relative ones resolved)."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _client_closure() -> dict[str, str]:
    """Every module the client can import → the keyless module that imports it first."""
    seen: dict[str, str] = {}
    todo = [(path, "(root)") for root in CLIENT_ROOTS for path in _package_files(root)]
    while todo:
        path, via = todo.pop()
        name = _module_name(path)
        if name in seen:
            continue
        seen[name] = via
        for imported in _imports(path):
            if imported.split(".")[0] != "keyless":
                seen.setdefault(imported, name)
                continue
            parts = imported.split(".")
            for i in range(2, len(parts) + 1):  # parent packages run their __init__ too
                found = _file_of(".".join(parts[:i]))
                if found is not None:
                    todo.append((found, name))
    return seen


def test_the_closure_covers_the_client() -> None:
    closure = _client_closure()
    for expected in ("keyless.verify.policy", "keyless.formats.bundle", "httpx", "cryptography"):
        assert any(m == expected or m.startswith(expected + ".") for m in closure), expected


def test_no_client_module_imports_a_server_package() -> None:
    offenders = {
        module: via
        for module, via in _client_closure().items()
        if module.split(".")[0] in SERVER_PACKAGES
    }
    assert offenders == {}


def _keyless_without_server(*argv: str) -> subprocess.CompletedProcess[str]:
    """``keyless ARGV`` in a process where the server packages are absent (``sys.modules`` entries
    of None: importing them fails, ``importlib.util.find_spec`` reports them missing)."""
    code = (
        "import sys\n"
        f"sys.modules.update(dict.fromkeys({sorted(SERVER_PACKAGES)!r}))\n"
        "from keyless._cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=60, check=False)


def test_client_commands_run_without_the_server_packages() -> None:
    for argv in (["--help"], ["sign", "--help"], ["attest", "--help"], ["verify", "--help"],
                 ["image", "sign", "--help"], ["image", "verify", "--help"],
                 ["git", "setup", "--help"], ["verify-commit", "--help"], ["verify-tag", "--help"]):
        done = _keyless_without_server(*argv)
        assert done.returncode == 0, (argv, done.stderr)
    bundle = ROOT / "tests/assets/conformance/bundle-verify/happy-path-v0.3/bundle.sigstore.json"
    done = _keyless_without_server(
        "verify", str(ROOT / "tests/assets/conformance/bundle-verify/a.txt"), "--bundle",
        str(bundle), "--offline", "--cert-oidc-issuer", "https://token.actions.githubusercontent.com",
        "--cert-identity",
        "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
        ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
    )
    assert done.returncode == 0, done.stderr


def test_server_commands_name_the_extra_when_it_is_missing() -> None:
    for command in ("serve", "admin", "log"):
        done = _keyless_without_server(command, "--help")
        assert done.returncode == 2, (command, done.stderr)
        assert done.stdout == ""
        assert done.stderr.strip().splitlines() == [
            f"keyless {command}: needs the server extra: pip install 'keyless[server]'"
        ]
