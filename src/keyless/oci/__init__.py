"""A small OCI registry client (distribution-spec v1.1) for storing signatures next to images.

:mod:`keyless.oci.reference` parses image references, :mod:`keyless.oci.auth` finds credentials
(Docker config, ``docker-credential-*`` helpers), :mod:`keyless.oci.registry` speaks the HTTP API
(manifests as exact bytes, monolithic blob uploads, referrers with the tag-schema fallback) and
:mod:`keyless.oci.manifest` builds and reads the manifests Sigstore tools store there. The package
knows nothing about signing: :mod:`keyless.image` puts the two together.
"""
