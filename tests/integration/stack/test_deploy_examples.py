"""The deployment examples of docs/deploy/ are the ones that work: the systemd unit's own
``ExecStart`` line starts a healthy stack (paths moved into a temporary directory, nothing else
changed) that stops cleanly on the unit's ``KillSignal``, and ``systemd-analyze`` finds nothing
wrong with the unit.
"""

from __future__ import annotations

import os
import shlex
import signal
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from stackutil import KEYLESS, PASSWORD, USER, RunningStack, free_port, wait_healthy

from conftest import ROOT, require_program

pytestmark = pytest.mark.integration

UNIT = ROOT / "docs" / "deploy" / "keyless.service"


def unit_settings() -> dict[str, str]:
    """``Key=value`` lines of the unit (each key appears once in it)."""
    values: dict[str, str] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            assert key not in values, f"{key} twice in {UNIT.name}"
            values[key] = value
    return values


def _replace_option(args: list[str], option: str, value: str) -> None:
    at = args.index(option)
    args[at + 1] = value


def test_the_systemd_units_exec_start_serves_and_stops_on_its_kill_signal(tmp_path: Path) -> None:
    unit = unit_settings()
    args = shlex.split(unit["ExecStart"])
    assert args[0] == "/opt/keyless/bin/keyless" and args[1] == "serve", args
    # only the machine-specific paths and the port move; every other option is the unit's own
    state = tmp_path / "var-lib-keyless"
    state.mkdir(mode=0o700)  # StateDirectoryMode
    users = tmp_path / "oidc-users"
    users.write_text(f"{USER}:{PASSWORD}\n")
    users.chmod(0o600)
    port = free_port()
    args[0] = str(KEYLESS)
    _replace_option(args, "--data-dir", str(state))
    _replace_option(args, "--oidc-user-file", str(users))
    _replace_option(args, "--port", str(port))
    public_url = args[args.index("--public-url") + 1]
    log_path = tmp_path / "journal.log"
    old_umask = os.umask(int(unit["UMask"], 8))
    try:
        with open(log_path, "wb") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    finally:
        os.umask(old_umask)
    stack = RunningStack(process, port, state, log_path, started_in=time.monotonic(),
                         public_url=public_url)
    try:
        wait_healthy(stack, 120)
        discovery = httpx.get(f"{stack.url}/oidc/.well-known/openid-configuration", timeout=30)
        assert discovery.json()["issuer"] == f"{public_url}/oidc"  # the unit's public URL
        assert stack.token()  # a user of the unit's --oidc-user-file signs in
        assert (state / "keyless.toml").stat().st_mode & 0o077 == 0, "UMask not applied"
    finally:
        kill = getattr(signal, unit["KillSignal"])
        code = stack.stop(kill, timeout=float(unit["TimeoutStopSec"]))
    assert code == 0, stack.output()
    assert "Traceback" not in stack.output()


def test_systemd_analyze_finds_nothing_wrong_with_the_unit(tmp_path: Path) -> None:
    analyze = require_program("systemd-analyze")
    # the unit names the install location of the docs; point it at this checkout's keyless
    unit = tmp_path / "keyless.service"
    unit.write_text(UNIT.read_text().replace("/opt/keyless/bin/keyless", str(KEYLESS)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


NGINX_EXAMPLE = ROOT / "docs" / "deploy" / "nginx.conf"


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate and key for ``localhost`` issued by it (PEM files)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deploy test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "fullchain.pem", directory / "privkey.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


def test_the_nginx_example_terminates_tls_in_front_of_keyless(tmp_path: Path) -> None:
    nginx = require_program("nginx")
    from stackutil import start_stack

    tls_port, http_port = free_port(), free_port()
    public_url = f"https://localhost:{tls_port}"
    ca, chain, key = _tls_files(tmp_path)
    stack = start_stack(tmp_path / "data", "--public-url", public_url, timeout=120)
    stack.public_url = public_url
    # the example as shipped; only addresses, ports and file locations change
    site = (NGINX_EXAMPLE.read_text()
            .replace("listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;")
            .replace("listen 80;", f"listen 127.0.0.1:{http_port};")
            .replace("listen [::]:443 ssl http2;\n", "").replace("listen [::]:80;\n", "")
            .replace("sigstore.example.org", "localhost")
            .replace("/etc/ssl/keyless/fullchain.pem", str(chain))
            .replace("/etc/ssl/keyless/privkey.pem", str(key))
            .replace("127.0.0.1:3000", f"127.0.0.1:{stack.port}"))
    (tmp_path / "site.conf").write_text(site)
    temp = {name: tmp_path / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    main = f"""
        daemon off; master_process off; pid {tmp_path}/nginx.pid;
        error_log {tmp_path}/error.log;
        events {{}}
        http {{
            access_log off;
            {''.join(f'{name}_temp_path {path}; ' for name, path in temp.items())
               .replace('body_temp_path', 'client_body_temp_path')}
            include {tmp_path}/site.conf;
        }}
    """
    (tmp_path / "nginx.conf").write_text(main)
    checked = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr
    proxy = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=30) as client:
            while True:  # nginx listens once it has read its configuration
                try:
                    health = client.get(f"{public_url}/healthz")
                    break
                except httpx.ConnectError:
                    assert proxy.poll() is None, proxy.communicate()[1]
                    assert time.monotonic() < deadline, "nginx did not listen"
                    time.sleep(0.05)
            assert health.status_code == 200 and health.json()["status"] == "ok"
            discovery = client.get(f"{public_url}/oidc/.well-known/openid-configuration").json()
            assert discovery["issuer"] == f"{public_url}/oidc"
            token = client.post(discovery["token_endpoint"], data={
                "grant_type": "password", "client_id": "sigstore", "scope": "openid email",
                "username": USER, "password": PASSWORD})
            assert token.status_code == 200, token.text
        plain = httpx.get(f"http://localhost:{http_port}/healthz", timeout=30)
        assert plain.status_code == 301
        assert plain.headers["location"] == "https://localhost/healthz"
    finally:
        proxy.terminate()
        proxy.wait(30)
        assert stack.stop() == 0, stack.output()
