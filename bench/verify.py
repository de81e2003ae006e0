"""Verify speed: keyless vs sigstore-python 4.5.1 on the same real bundles, in one run.

Prints, per bundle, the warm in-process time (parse + full verification, median of repeated
runs after a warm-up; one verifier per trusted root, reused as a long-running service would) and
the cold CLI wall time (one ``verify`` process, median of a few runs), with keyless/sigstore-python
ratios, and the machine's core count and load (the CI machine is shared: figures are pessimistic).

Bundles (tests/assets/README.md): conformance ``happy-path-v0.3`` (Rekor v1, production),
``happy-path-intoto-in-dsse-v3`` (DSSE, dsse 0.0.1), sigstore-python's ``bundle_v3_github.whl``
(v0.2, GitHub claims), ``staging-rekor-v2.txt`` (Rekor v2 + RFC 3161) and
``a.dsse.staging-rekor-v2.txt`` (DSSE on Rekor v2, witnessed checkpoint); and two bundles that
the run signs itself on a throwaway ``keyless serve`` (``keyless-v2+tsa``: the default Rekor v2 +
RFC 3161 bundle; ``keyless-v1``: ``--rekor-version 1``), verified with that instance's trust
config. Public-good leaves are signed by a P-384 intermediate, keyless's by a P-256 one, which is
most of the difference between the two groups (see the crypto floor printed at the end).

Usage: ``.venv/bin/python bench/verify.py [--warm N] [--cold N]``; needs ``make interop``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
V = ROOT / "tests" / "assets"
PY_INTEROP = ROOT / ".interop" / "venv" / "bin"
KEYLESS = ROOT / ".venv" / "bin" / "keyless"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GHA = "https://token.actions.githubusercontent.com"


@dataclass(frozen=True)
class Case:
    name: str
    bundle: Path
    artifact: Path
    root: str  # production | staging | keyless (a key of ROOTS / the trust configs)
    identity: str
    issuer: str
    dsse: bool = False


#: trusted_root.json per root name; the run adds "keyless" for its own instance.
ROOTS = {name: V / "public-good" / name / "trusted_root.json" for name in ("production", "staging")}


CASES = [
    Case("happy-path-v0.3", V / "conformance/bundle-verify/happy-path-v0.3/bundle.sigstore.json",
         V / "conformance/bundle-verify/a.txt", "production", BEACON, GHA),
    Case("intoto-in-dsse-v3",
         V / "conformance/bundle-verify/happy-path-intoto-in-dsse-v3/bundle.sigstore.json",
         V / "conformance/bundle-verify/a.txt", "production", BEACON, GHA, dsse=True),
    Case("github-whl-v0.2", V / "sigstore-python/bundle_v3_github.whl.sigstore",
         V / "sigstore-python/bundle_v3_github.whl", "production",
         "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2",
         GHA),
    Case("rekor-v2+tsa", V / "sigstore-python/staging-rekor-v2.txt.sigstore.json",
         V / "sigstore-python/staging-rekor-v2.txt", "staging", "jku@goto.fi",
         "https://github.com/login/oauth"),
    Case("dsse-rekor-v2", V / "sigstore-python/a.dsse.staging-rekor-v2.txt.sigstore.json",
         V / "conformance/a.txt", "staging", BEACON, GHA, dsse=True),
]

PY_WARM = r"""
import json, sys, time, statistics
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier, policy
cases, n = json.loads(sys.argv[1]), int(sys.argv[2])
verifiers = {}
out = {}
for c in cases:
    v = verifiers.get(c["root"])
    if v is None:
        v = verifiers[c["root"]] = Verifier(trusted_root=TrustedRoot.from_file(c["root_path"]))
    data = open(c["bundle"], "rb").read().decode()
    art = open(c["artifact"], "rb").read()
    pol = policy.Identity(identity=c["identity"], issuer=c["issuer"])
    def once():
        b = Bundle.from_json(data)
        if c["dsse"]:
            v.verify_dsse(b, pol)
        else:
            v.verify_artifact(art, b, pol)
    for _ in range(max(3, n // 10)):
        once()
    times = []
    cpu = time.process_time()
    for _ in range(n):
        t = time.perf_counter(); once(); times.append(time.perf_counter() - t)
    out[c["name"]] = [statistics.median(times), (time.process_time() - cpu) / n]
print(json.dumps(out))
"""


def root_path(name: str) -> Path:
    return ROOTS[name]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def own_cases(tmp: Path) -> tuple[list[Case], Path]:
    """Sign two bundles on a throwaway keyless stack; return them and its client trust config."""
    import httpx

    port, user, password = _free_port(), "bench@example.com", "bench-password"
    url = f"http://localhost:{port}"
    server = subprocess.Popen(
        [str(KEYLESS), "serve", "--data-dir", str(tmp / "stack"), "--port", str(port),
         "--oidc-user", f"{user}:{password}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("keyless serve did not become healthy")
            time.sleep(0.2)
        trust_config = tmp / "keyless.tc.json"
        trust_config.write_bytes(httpx.get(f"{url}/client-trust-config.json", timeout=10).content)
        root = tmp / "keyless.trusted_root.json"
        root.write_text(json.dumps(json.loads(trust_config.read_text())["trustedRoot"]))
        ROOTS["keyless"] = root
        cases = []
        for name, extra in (("keyless-v2+tsa", []), ("keyless-v1", ["--rekor-version", "1"])):
            artifact = tmp / f"{name}.txt"
            artifact.write_text(f"{name}\n")
            token = httpx.post(
                f"{url}/oidc/token", timeout=10,
                data={"grant_type": "password", "client_id": "sigstore",
                      "scope": "openid email", "username": user, "password": password},
            ).json()["id_token"]
            subprocess.run(
                [str(KEYLESS), "sign", str(artifact), "--identity-token", token,
                 "--trust-config", str(trust_config), *extra],
                check=True, capture_output=True, timeout=60,
            )
            cases.append(Case(name, artifact.with_name(artifact.name + ".sigstore.json"),
                              artifact, "keyless", user, f"{url}/oidc"))
        return cases, trust_config
    finally:  # the bundles verify offline: the stack is not needed any more
        server.terminate()
        server.wait(30)


def keyless_warm(n: int, cases: list[Case]) -> dict[str, tuple[float, float]]:
    """Median wall time and mean CPU time of one parse + verification, per bundle."""
    from keyless.formats.trustroot import TrustedRoot
    from keyless.verify.artifact import Artifact
    from keyless.verify.policy import Identity
    from keyless.verify.verifier import Verifier

    verifiers: dict[str, Verifier] = {}
    out: dict[str, tuple[float, float]] = {}
    for c in cases:
        v = verifiers.get(c.root)
        if v is None:
            v = verifiers[c.root] = Verifier(TrustedRoot.from_json(root_path(c.root).read_bytes()))
        data = c.bundle.read_bytes()
        art = c.artifact.read_bytes()
        pol = Identity(issuer=c.issuer, identity=c.identity)

        def once(v: Verifier = v, data: bytes = data, art: bytes = art,
                 pol: Identity = pol) -> None:
            v.verify(data, Artifact.from_bytes(art), policy=pol)

        for _ in range(max(3, n // 10)):
            once()
        times = []
        cpu = time.process_time()
        for _ in range(n):
            t = time.perf_counter()
            once()
            times.append(time.perf_counter() - t)
        out[c.name] = (statistics.median(times), (time.process_time() - cpu) / n)
    return out


def python_warm(n: int, cases: list[Case]) -> dict[str, tuple[float, float]]:
    spec = [
        {"name": c.name, "bundle": str(c.bundle), "artifact": str(c.artifact), "root": c.root,
         "root_path": str(root_path(c.root)), "identity": c.identity, "issuer": c.issuer,
         "dsse": c.dsse}
        for c in cases
    ]
    proc = subprocess.run([str(PY_INTEROP / "python"), "-c", PY_WARM, json.dumps(spec), str(n)],
                          capture_output=True, text=True, check=True)
    result: dict[str, list[float]] = json.loads(proc.stdout)
    return {k: (v[0], v[1]) for k, v in result.items()}


def _wall(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stderr[-400:]}")
    return elapsed


def cold(
    n: int, tmp: Path, cases: list[Case], own_config: Path
) -> tuple[dict[str, float], dict[str, float]]:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache"), "XDG_DATA_HOME": str(tmp / "data")}
    configs: dict[str, Path] = {}
    for name in ("production", "staging"):
        path = tmp / f"{name}.tc.json"
        path.write_text(json.dumps({
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": json.loads(root_path(name).read_text()),
            "signingConfig": json.loads(
                (V / "public-good" / name / "signing_config.v0.2.json").read_text()),
        }))
        configs[name] = path
    configs["keyless"] = own_config
    ours: dict[str, float] = {}
    theirs: dict[str, float] = {}
    for c in cases:
        tc = str(configs[c.root])
        k_args = [str(KEYLESS), "verify-attestation" if c.dsse else "verify", str(c.artifact),
                  "--bundle", str(c.bundle), "--cert-identity", c.identity,
                  "--cert-oidc-issuer", c.issuer, "--trust-config", tc]
        p_args = [str(PY_INTEROP / "sigstore"), "--trust-config", tc, "verify", "identity",
                  "--bundle", str(c.bundle), "--cert-identity", c.identity,
                  "--cert-oidc-issuer", c.issuer, str(c.artifact)]
        k, p = [], []
        for _ in range(n):  # interleaved so that load changes hit both alike
            k.append(_wall(k_args, env))
            p.append(_wall(p_args, env))
        ours[c.name] = statistics.median(k)
        theirs[c.name] = statistics.median(p)
    return ours, theirs


def crypto_floor(n: int) -> tuple[float, float]:
    """CPU time of one P-384 and one P-256 ECDSA verification: a Rekor v1 keyless bundle needs
    1 x P-384 (leaf by the Fulcio intermediate) + 4 x P-256 (SCT, checkpoint, SET, signature);
    a Rekor v2 one with an RFC 3161 timestamp 2 x P-384 (leaf, TSA token) + 2 x P-256 (SCT,
    signature) + 1 x Ed25519 (checkpoint)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    out = []
    for curve, h in ((ec.SECP384R1(), hashes.SHA384()), (ec.SECP256R1(), hashes.SHA256())):
        key = ec.generate_private_key(curve)
        sig = key.sign(b"x" * 200, ec.ECDSA(h))
        pub = key.public_key()
        cpu = time.process_time()
        for _ in range(n):
            pub.verify(sig, b"x" * 200, ec.ECDSA(h))
        out.append((time.process_time() - cpu) / n)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=200, help="timed verifications per bundle")
    parser.add_argument("--cold", type=int, default=5, help="CLI runs per bundle and client")
    args = parser.parse_args()
    if not (PY_INTEROP / "sigstore").exists():
        raise SystemExit("sigstore-python 4.5.1 missing: run `make interop`")
    print(f"cores: {os.cpu_count()}  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        own, own_config = own_cases(Path(tmp))
        cases = CASES + own
        kw = keyless_warm(args.warm, cases)
        pw = python_warm(args.warm, cases)
        kc, pc = cold(args.cold, Path(tmp), cases, own_config)
    header = (f"{'bundle':<18} {'warm wall keyless':>17} {'sigstore-py':>12} {'ratio':>6} "
              f"{'warm CPU keyless':>17} {'sigstore-py':>12} {'ratio':>6}   "
              f"{'cold keyless':>12} {'sigstore-py':>12} {'ratio':>6}")
    print(header)
    print("-" * len(header))

    def row(name: str, kw_: tuple[float, float], pw_: tuple[float, float], kc_: float,
            pc_: float) -> None:
        print(f"{name:<18} {kw_[0] * 1e3:>14.3f} ms {pw_[0] * 1e3:>9.3f} ms "
              f"{kw_[0] / pw_[0]:>6.2f} {kw_[1] * 1e3:>14.3f} ms {pw_[1] * 1e3:>9.3f} ms "
              f"{kw_[1] / pw_[1]:>6.2f}   "
              f"{kc_ * 1e3:>9.0f} ms {pc_ * 1e3:>9.0f} ms {kc_ / pc_:>6.2f}")

    for c in cases:
        row(c.name, kw[c.name], pw[c.name], kc[c.name], pc[c.name])
    mean = statistics.mean

    def avg(d: dict[str, tuple[float, float]]) -> tuple[float, float]:
        return (mean(v[0] for v in d.values()), mean(v[1] for v in d.values()))

    for label, group in (("mean public-good", CASES), ("mean keyless", own)):
        names = [c.name for c in group]

        def pick(d: dict[str, tuple[float, float]], names: list[str] = names
                 ) -> dict[str, tuple[float, float]]:
            return {k: d[k] for k in names}

        row(label, avg(pick(kw)), avg(pick(pw)), mean(kc[k] for k in names),
            mean(pc[k] for k in names))
    p384, p256 = crypto_floor(args.warm * 2)
    print(f"crypto floor (CPU): P-384 verify {p384 * 1e3:.3f} ms, P-256 verify {p256 * 1e3:.3f} ms;"
          f" Rekor v1 keyless bundle = 1 x P-384 + 4 x P-256 = {(p384 + 4 * p256) * 1e3:.3f} ms;"
          f" Rekor v2 + RFC 3161 = 2 x P-384 + 2 x P-256 + Ed25519 >"
          f" {(2 * p384 + 2 * p256) * 1e3:.3f} ms")
    print("targets: warm <= 1 ms per bundle, keyless verify cold <= 300 ms wall")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
