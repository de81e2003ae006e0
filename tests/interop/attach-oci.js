#!/usr/bin/env node
// Attach a Sigstore bundle to an image as an OCI 1.1 referrer with the unmodified
// `@sigstore/oci` library, exactly as actions/attest does (`attachArtifactToImage`, the
// bundle JSON as the artifact, the `dev.sigstore.bundle.*` annotations).
//
// usage: node attach-oci.js IMAGE_NAME IMAGE_DIGEST BUNDLE_FILE
//   IMAGE_NAME   e.g. 127.0.0.1:5000/team/app (plain HTTP for localhost / 127.0.0.1)
//   env: NODE_PATH  node_modules folder that holds `@sigstore/oci`
// Output: the referrer manifest's descriptor as JSON on stdout.
const fs = require('fs');
const { attachArtifactToImage } = require('@sigstore/oci');

const [imageName, imageDigest, bundleFile] = process.argv.slice(2);
if (!imageName || !imageDigest || !bundleFile || process.argv.includes('--help')) {
  console.error('usage: node attach-oci.js IMAGE_NAME IMAGE_DIGEST BUNDLE_FILE');
  process.exit(process.argv.includes('--help') ? 0 : 2);
}
const bundle = JSON.parse(fs.readFileSync(bundleFile, 'utf8'));
const statement = JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString());
attachArtifactToImage({
  imageName,
  imageDigest,
  artifact: Buffer.from(JSON.stringify(bundle)),
  mediaType: bundle.mediaType,
  annotations: {
    'dev.sigstore.bundle.content': 'dsse-envelope',
    'dev.sigstore.bundle.predicateType': statement.predicateType,
  },
  credentials: undefined,
  fetchOpts: { timeout: 30000, retry: 3 },
})
  .then((descriptor) => { process.stdout.write(JSON.stringify(descriptor) + '\n'); })
  .catch((e) => { console.error('ATTACH FAILED:', e); process.exit(1); });
