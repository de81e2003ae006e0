// Obtain a certificate from the CA with sigstore-js 5.0.1's own FulcioSigner (publicKeyRequest +
// proof of possession over the email/sub claim) and check it with @sigstore/verify's certificate
// verification (chain to the trusted root's CA, exactly one SCT verified against its ctlogs) and
// identity policy (SAN + issuer extension).
// usage: node sigstore_js_check.js CA_URL TRUSTED_ROOT_JSON IDENTITY ISSUER   (token in $TOKEN)
'use strict';
const fs = require('fs');
const { FulcioSigner } = require('@sigstore/sign');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { toTrustMaterial } = require('@sigstore/verify');
const { verifyCertificate } = require('@sigstore/verify/dist/key');
const { verifySubjectAlternativeName, verifyExtensions } = require('@sigstore/verify/dist/policy');
const { X509Certificate } = require('@sigstore/core');

async function main() {
  const [caUrl, trPath, identity, issuer] = process.argv.slice(2);
  const signer = new FulcioSigner({
    fulcioBaseURL: caUrl,
    identityProvider: { getToken: async () => process.env.TOKEN },
  });
  const sig = await signer.sign(Buffer.from('hello'));
  if (sig.key.$case !== 'x509Certificate') throw new Error('no certificate');
  const pem = sig.key.certificate;
  const trustedRoot = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(trPath)));
  const tm = toTrustMaterial(trustedRoot);
  const leaf = X509Certificate.parse(pem);
  const result = verifyCertificate(leaf, [new Date()], tm);
  if (result.scts.length !== 1) throw new Error(`expected 1 verified SCT, got ${result.scts.length}`);
  verifySubjectAlternativeName(identity, result.signer.identity.subjectAlternativeName);
  verifyExtensions({ issuer }, result.signer.identity.extensions);
  process.stdout.write(JSON.stringify({ ok: true, pem }) + '\n');
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ ok: false, error: `${err.code || ''} ${err.message}` }) + '\n');
  process.exit(1);
});
