// Timestamp with sigstore-js's own TSA client (JSON request) and verify with @sigstore/verify.
//
// Usage: NODE_PATH=.interop/node/node_modules node sigstore_js_tsa.js TSA_URL CHAIN_PEM [OTHER_CHAIN_PEM]
// Prints one JSON object: {"verified", "tamperedRejected", "otherChainRejected", "genTime", "der"}.
// TSAWitness is what sigstore.sign() uses to timestamp a signature (interop.md §5 item 4);
// verifyRFC3161Timestamp is what @sigstore/verify runs for every bundle timestamp.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const { TSAWitness } = require('@sigstore/sign');
const { RFC3161Timestamp, X509Certificate } = require('@sigstore/core');
const { verifyRFC3161Timestamp } = require('@sigstore/verify/dist/timestamp/tsa');

function authority(pemPath) {
  const pems = fs.readFileSync(pemPath, 'utf8').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g);
  return {
    certChain: pems.map((p) => X509Certificate.parse(p)),
    validFor: { start: new Date('2020-01-01T00:00:00Z'), end: new Date(8640000000000000) },
  };
}

function verifies(ts, data, authorities) {
  try {
    verifyRFC3161Timestamp(ts, data, authorities);
    return true;
  } catch (e) {
    return false;
  }
}

async function main() {
  const [url, chainPem, otherPem] = process.argv.slice(2);
  const signature = crypto.randomBytes(71);
  const witness = new TSAWitness({ tsaBaseURL: url, timeout: 5000, retry: 0 });
  const result = await witness.testify({ $case: 'messageSignature', messageSignature: { signature } });
  const der = result.rfc3161Timestamps[0].signedTimestamp;
  const ts = RFC3161Timestamp.parse(der);
  const tampered = Buffer.concat([signature, Buffer.from('x')]);
  console.log(JSON.stringify({
    verified: verifies(ts, signature, [authority(chainPem)]),
    tamperedRejected: !verifies(ts, tampered, [authority(chainPem)]),
    otherChainRejected: otherPem ? !verifies(ts, signature, [authority(otherPem)]) : null,
    genTime: ts.signingTime.toISOString(),
    der: Buffer.from(der).toString('base64'),
  }));
}

main().catch((e) => { console.error(e); process.exit(1); });
