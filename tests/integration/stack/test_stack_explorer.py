"""The log explorer (issue #18) on a real ``keyless serve``: search every log for an identity,
a digest, an index or a key; open entries; status; and hostile queries answered escaped or 4xx.

Entries come from the real client (``keyless sign`` with Rekor v1 and v2, tokens from the
password grant) and one forged entry: a self-signed certificate naming alice, logged through
the Rekor v1 API, which must never be listed under alice's name.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stackutil import KEYLESS, PASSWORD, USER, RunningStack, start_stack

pytestmark = pytest.mark.integration

BOB = "bob@example.com"
ENTRY_LINK = re.compile(r'href="/explorer/entry/([a-z0-9.-]+)/(\d+)"')


@dataclass
class Signed:
    stack: RunningStack
    #: (log slug, index) of each signature, by name
    entries: dict[str, tuple[str, int]]
    digests: dict[str, str]
    bundles: dict[str, dict[str, object]]


def _sign(stack: RunningStack, tmp: Path, name: str, user: str, version: int) -> dict[str, object]:
    artifact = tmp / name
    artifact.write_bytes(f"{name} signed by {user} into Rekor v{version}\n".encode())
    done = subprocess.run(
        [str(KEYLESS), "sign", str(artifact), "--identity-token", stack.token(user, PASSWORD),
         "--server", stack.url, "--rekor-version", str(version)],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    bundle: dict[str, object] = json.loads((tmp / f"{name}.sigstore.json").read_text())
    return bundle


def _forge(stack: RunningStack) -> tuple[int, str]:
    """Log a hashedrekord whose self-signed certificate claims alice's identity (Rekor v1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forger")])
    now = dt.datetime.now(dt.UTC)
    issuer_ext = stack.issuer.encode()
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(USER)]), critical=False)
        .add_extension(x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"),
            bytes([0x0C, len(issuer_ext)]) + issuer_ext), critical=False)
        .sign(key, hashes.SHA256())
    )
    artifact = b"forged in alice's name"
    digest = hashlib.sha256(artifact).hexdigest()
    signature = key.sign(artifact, ec.ECDSA(hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    proposed = {
        "apiVersion": "0.0.1", "kind": "hashedrekord",
        "spec": {
            "signature": {"content": base64.b64encode(signature).decode(),
                          "publicKey": {"content": base64.b64encode(pem).decode()}},
            "data": {"hash": {"algorithm": "sha256", "value": digest}},
        },
    }
    answer = httpx.post(stack.url + "/api/v1/log/entries", json=proposed, timeout=30)
    assert answer.status_code == 201, answer.text
    return int(next(iter(answer.json().values()))["logIndex"]), digest


def _index(bundle: dict[str, object]) -> int:
    material = bundle["verificationMaterial"]
    assert isinstance(material, dict)
    return int(material["tlogEntries"][0]["logIndex"])


def links(html: str) -> set[tuple[str, int]]:
    return {(log, int(index)) for log, index in ENTRY_LINK.findall(html)}


def explore(stack: RunningStack, q: str, **params: str) -> httpx.Response:
    return httpx.get(stack.url + "/", params={"q": q, **params}, timeout=30)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signed]:
    tmp = tmp_path_factory.mktemp("explorer")
    stack = start_stack(tmp / "data", users=(f"{USER}:{PASSWORD}", f"{BOB}:{PASSWORD}"))
    try:
        bundles = {
            "alice-v2": _sign(stack, tmp, "alice-v2.txt", USER, 2),
            "alice-v1": _sign(stack, tmp, "alice-v1.txt", USER, 1),
            "bob-v2": _sign(stack, tmp, "bob-v2.txt", BOB, 2),
        }
        forged_index, forged_digest = _forge(stack)
        entries = {
            "alice-v2": ("rekor-v2", _index(bundles["alice-v2"])),
            "alice-v1": ("rekor-v1", _index(bundles["alice-v1"])),
            "bob-v2": ("rekor-v2", _index(bundles["bob-v2"])),
            "forged": ("rekor-v1", forged_index),
        }
        digests = {name: hashlib.sha256((tmp / f"{name}.txt").read_bytes()).hexdigest()
                   for name in bundles}
        digests["forged"] = forged_digest
        # the search index is written just after the acknowledgement: wait until it holds bob's
        deadline = time.monotonic() + 30
        while entries["bob-v2"] not in links(explore(stack, BOB).text):
            assert time.monotonic() < deadline, stack.output()[-3000:]
            time.sleep(0.1)
        deadline = time.monotonic() + 30
        while entries["forged"] not in links(explore(stack, digests["forged"]).text):
            assert time.monotonic() < deadline, stack.output()[-3000:]
            time.sleep(0.1)
        yield Signed(stack, entries, digests, bundles)
    finally:
        assert stack.stop() == 0, stack.output()[-3000:]


def test_identity_search_lists_every_entry_of_alice_and_no_one_elses(signed: Signed) -> None:
    answer = explore(signed.stack, "Alice@Example.com")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    found = links(answer.text)
    rekor = {e for e in found if e[0] != "ctlog"}
    assert rekor == {signed.entries["alice-v2"], signed.entries["alice-v1"]}
    assert signed.entries["forged"] not in found and signed.entries["bob-v2"] not in found
    ct = [e for e in found if e[0] == "ctlog"]
    assert len(ct) == 2, answer.text  # one certificate per `keyless sign`, both in the CT log
    assert "(not issued by this CA)" not in answer.text
    assert BOB not in answer.text


def test_a_digest_search_finds_the_artifact_in_its_log(signed: Signed) -> None:
    for name in ("alice-v2", "alice-v1"):
        hex_digest = signed.digests[name]
        for q in (f"sha256:{hex_digest}", hex_digest, f"SHA256:{hex_digest.upper()}"):
            answer = explore(signed.stack, q)
            assert answer.status_code == 200, answer.text
            assert links(answer.text) == {signed.entries[name]}, q
            assert hex_digest in answer.text and USER in answer.text


def test_the_forged_entry_is_found_by_digest_and_marked_unverified(signed: Signed) -> None:
    answer = explore(signed.stack, "sha256:" + signed.digests["forged"])
    assert links(answer.text) == {signed.entries["forged"]}
    assert "(not issued by this CA)" in answer.text
    log, index = signed.entries["forged"]
    page = httpx.get(f"{signed.stack.url}/explorer/entry/{log}/{index}", timeout=30)
    assert "not issued by this instance's CA" in page.text


def test_an_index_search_lists_that_index_in_every_log(signed: Signed) -> None:
    log, index = signed.entries["alice-v1"]
    found = links(explore(signed.stack, str(index)).text)
    assert (log, index) in found
    assert all(i == index for _, i in found)
    answer = explore(signed.stack, "999999")
    assert answer.status_code == 200 and not links(answer.text)


def test_a_key_fingerprint_search_finds_the_entry_and_its_certificate(signed: Signed) -> None:
    material = signed.bundles["alice-v2"]["verificationMaterial"]
    assert isinstance(material, dict)
    der = base64.b64decode(material["certificate"]["rawBytes"])
    spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    answer = explore(signed.stack, f"key:sha256:{hashlib.sha256(spki).hexdigest()}")
    found = links(answer.text)
    assert signed.entries["alice-v2"] in found
    assert len([e for e in found if e[0] == "ctlog"]) == 1
    assert len(found) == 2


@pytest.mark.parametrize("name", ["alice-v2", "alice-v1"])
def test_an_entry_page_decodes_the_certificate_and_verifies_the_proof(
    signed: Signed, name: str
) -> None:
    log, index = signed.entries[name]
    page = httpx.get(f"{signed.stack.url}/explorer/entry/{log}/{index}", timeout=30)
    assert page.status_code == 200
    text = page.text
    assert 'id="proof" class="ok">Verified' in text
    assert USER in text and signed.stack.issuer in text
    assert "<span class=\"ok\">issued by this instance's CA" in text
    assert signed.digests[name] in text
    fragment = httpx.get(f"{signed.stack.url}/explorer/entry/{log}/{index}/download", timeout=30)
    assert fragment.status_code == 200
    assert "attachment" in fragment.headers["content-disposition"]
    entry = fragment.json()["tlogEntries"][0]
    material = signed.bundles[name]["verificationMaterial"]
    assert isinstance(material, dict)
    bundled = material["tlogEntries"][0]
    assert entry["logIndex"] == bundled["logIndex"]
    assert entry["canonicalizedBody"] == bundled["canonicalizedBody"]
    assert entry["kindVersion"] == bundled["kindVersion"]
    assert entry["inclusionProof"]["checkpoint"]["envelope"]


def test_a_ct_entry_page_shows_the_precertificate_with_a_verified_proof(signed: Signed) -> None:
    ct = sorted(e for e in links(explore(signed.stack, USER).text) if e[0] == "ctlog")
    page = httpx.get(f"{signed.stack.url}/explorer/entry/ctlog/{ct[0][1]}", timeout=30)
    assert page.status_code == 200
    assert "precertificate" in page.text and 'class="ok">Verified' in page.text
    assert USER in page.text
    pem = httpx.get(f"{signed.stack.url}/explorer/entry/ctlog/{ct[0][1]}/download", timeout=30)
    assert x509.load_pem_x509_certificate(pem.content)


def test_the_status_page_shows_every_log_and_the_chains(signed: Signed) -> None:
    page = httpx.get(f"{signed.stack.url}/explorer/status", timeout=30)
    assert page.status_code == 200
    text = page.text
    for label in ("Rekor v1", "Rekor v2", "CT log"):
        assert label in text
    trust = signed.stack.client_trust_config()
    root = trust["trustedRoot"]
    assert isinstance(root, dict)
    for authority in (*root["certificateAuthorities"], *root["timestampAuthorities"]):
        for cert in authority["certChain"]["certificates"]:
            assert hashlib.sha256(base64.b64decode(cert["rawBytes"])).hexdigest() in text
    assert 'href="/client-trust-config.json"' in text and 'href="/tuf/root.json"' in text
    assert httpx.get(signed.stack.url + "/tuf/root.json", timeout=10).status_code == 200


def test_pages_carry_a_strict_content_security_policy(signed: Signed) -> None:
    for path in ("/", "/?q=alice%40example.com", "/explorer/status", "/?q=%3C",
                 "/explorer/entry/nope/1"):
        answer = httpx.get(signed.stack.url + path, timeout=30)
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy, path
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "<script" not in answer.text.lower()


HOSTILE_ECHOED = [
    '<script>alert(1)</script>@example.com',
    '"><img src=x onerror=alert(1)>@x',
    "javascript:alert(1)//@x",
    "\u202egnp.exe@example.com",
    "'; DROP TABLE entries; --@x",
]


@pytest.mark.parametrize("q", HOSTILE_ECHOED)
def test_hostile_queries_come_back_escaped(signed: Signed, q: str) -> None:
    answer = explore(signed.stack, q)
    assert answer.status_code in (200, 400), answer.text
    assert "<script>alert" not in answer.text and "<img src=x" not in answer.text
    assert "<script" not in answer.text.lower()
    if "<" in q:
        assert "&lt;" in answer.text


def raw_get(stack: RunningStack, target: str) -> tuple[int, bytes]:
    """``GET target`` over a plain socket (HTTP clients refuse 100 KB URLs themselves)."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                     .encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


def test_a_100_kb_query_is_a_4xx(signed: Signed) -> None:
    for q in ("a" * 100_000 + "@example.com", "%3Cscript%3E" * 9000, "a" * 600):
        status, data = raw_get(signed.stack, f"/?q={q}")
        assert 400 <= status < 500, status
        assert b"<script" not in data.lower()


@pytest.mark.parametrize("raw", [
    "q=" + "%3Cb%3E" * 200,
    "q=%00alice%40example.com",
    "q=alice%40example.com%0d%0aSet-Cookie:%20x=1",
    "q=a&q=b",
    "q=alice%40example.com&page=0",
    "q=alice%40example.com&page=99999999999999999999",
    "q=alice%40example.com&page=-1",
    "q=sha256:zz",
    "q=sha256:" + "a" * 63,
    "q=99999999999999999999999",
    "q=just+words",
])
def test_bad_or_oversized_queries_are_a_4xx(signed: Signed, raw: str) -> None:
    answer = httpx.get(f"{signed.stack.url}/?{raw}", timeout=30)
    assert 400 <= answer.status_code < 500, (raw[:80], answer.status_code)
    assert "<script" not in answer.text.lower() and "<b>" not in answer.text
    assert "set-cookie" not in answer.headers


def test_odd_encodings_are_escaped_or_refused(signed: Signed) -> None:
    for raw in ("q=%ff%fe%3Cscript%3E@x", "q=%C0%BCscript%C0%BE@x", "q=%EF%BC%9Cscript@x"):
        answer = httpx.get(f"{signed.stack.url}/?{raw}", timeout=30)
        assert answer.status_code in (200, 400), raw
        assert "<script" not in answer.text.lower()


def test_unknown_entries_are_a_404_page(signed: Signed) -> None:
    for path, status in (("/explorer/entry/nope/1", 404), ("/explorer/entry/rekor-v2/999999", 404),
                         ("/explorer/entry/rekor-v2/-1", 400), ("/explorer/entry/rekor-v2/x", 400),
                         ("/explorer/entry/%3Cscript%3E/1", 404)):
        answer = httpx.get(signed.stack.url + path, timeout=30)
        assert answer.status_code == status, (path, answer.text)
        assert "<script" not in answer.text.lower()


def test_the_explorer_shows_every_shard_after_a_log_rotation(tmp_path: Path) -> None:
    data = tmp_path / "data"
    start_stack(data).stop()
    rotated = subprocess.run([str(KEYLESS), "admin", "rotate", "log", "--data-dir", str(data)],
                             capture_output=True, text=True, timeout=60, check=False)
    assert rotated.returncode == 0, rotated.stderr
    stack = start_stack(data)
    try:
        status = httpx.get(stack.url + "/explorer/status", timeout=30)
        assert status.status_code == 200
        assert "Rekor v2 (rekor-2)" in status.text and "Rekor v2<" in status.text
        found = links(explore(stack, "0").text)  # every log starts with a placeholder
        assert len({log for log, _ in found if log.startswith("rekor-v1")}) == 1, found
        assert len({log for log, _ in found if log.startswith("rekor-v2")}) == 2, found
        for log, _ in found:  # the placeholder opens as such, and is no bundle entry
            page = httpx.get(f"{stack.url}/explorer/entry/{log}/0", timeout=30)
            assert page.status_code == 200 and "placeholder" in page.text
            assert 'class="ok">Verified' in page.text
            fragment = httpx.get(f"{stack.url}/explorer/entry/{log}/0/download", timeout=30)
            assert fragment.status_code == 404
    finally:
        assert stack.stop() == 0, stack.output()[-3000:]
