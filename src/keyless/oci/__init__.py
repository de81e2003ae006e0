"""A small OCI registry client (distribution-spec v1.1) for storing signatures next to images.

:mod:`keyless.oci.reference` parses image references, :mod:`keyless.oci.auth` finds credentials
(Docker config, ``docker-credential-*`` helpers), :mod:`keyless.oci.transport` talks to a registry
(TLS, auth challenges, tokens, retries), :mod:`keyless.oci.registry` speaks the HTTP API over it
(manifests as exact bytes, monolithic blob uploads, referrers with the tag-schema fallback) on the
model of :mod:`keyless.oci.content` (descriptors, manifests; errors in :mod:`keyless.oci.errors`),
and :mod:`keyless.oci.sigstore` builds and reads the manifests Sigstore tools store there. The
package knows nothing about signing: :mod:`keyless.image` puts the two together.
"""
