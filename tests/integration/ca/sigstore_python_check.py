"""Run with sigstore-python 4.5.1's interpreter: obtain a certificate the way `sigstore sign` does
and apply the verifier's own certificate checks.

Steps mirror ``sigstore/sign.py`` (CSR + bearer via ``FulcioClient``, then ``verify_sct`` against
the trusted root's CT keyring) and ``sigstore/verify/verifier.py`` (``_verify_chain_at_time`` with
cryptography's PolicyBuilder, KeyUsage/EKU checks, ``policy.Identity``).
usage: python sigstore_python_check.py CA_URL TRUSTED_ROOT_JSON IDENTITY ISSUER  (token in $TOKEN)
Prints one JSON line {"ok": true, "pem": ...} or {"ok": false, "error": ...}.
"""

import datetime
import json
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from sigstore._internal.fulcio.client import FulcioClient
from sigstore._internal.sct import verify_sct
from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult
from sigstore._internal.trust import KeyringPurpose
from sigstore.models import TrustedRoot
from sigstore.oidc import IdentityToken
from sigstore.verify.policy import Identity
from sigstore.verify.verifier import Verifier


def main() -> None:
    ca_url, tr_path, identity, issuer = sys.argv[1:5]
    token = IdentityToken(os.environ["TOKEN"])
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    response = FulcioClient(ca_url).signing_cert.post(csr, token)
    cert, chain = response.cert, response.chain
    trusted_root = TrustedRoot.from_file(tr_path)
    verify_sct(cert, chain, trusted_root.ct_keyring(KeyringPurpose.SIGN))
    verifier = Verifier(trusted_root=trusted_root)
    now = TimestampVerificationResult(
        source=TimestampSource.TRANSPARENCY_SERVICE,
        time=datetime.datetime.now(datetime.UTC),
    )
    verified_chain = verifier._verify_chain_at_time(cert, now)
    verify_sct(cert, verified_chain, trusted_root.ct_keyring(KeyringPurpose.VERIFY))
    if not cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
        raise RuntimeError("KeyUsage lacks digitalSignature")
    if ExtendedKeyUsageOID.CODE_SIGNING not in cert.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage
    ).value:
        raise RuntimeError("EKU lacks codeSigning")
    Identity(identity=identity, issuer=issuer).verify(cert)
    print(json.dumps({"ok": True, "pem": cert.public_bytes(Encoding.PEM).decode()}))


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # report any failure as one line for the test
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)
