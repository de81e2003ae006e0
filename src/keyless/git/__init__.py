"""Git commits and tags signed keylessly (issue #19; docs/git.md).

``keyless-git`` speaks the gpgsm interface git uses for ``gpg.format = x509``
(:mod:`keyless.git.program`); the signature is a detached CMS SignedData in gitsign's layout
(:mod:`keyless.git.cms`) that embeds the transparency log entry (:mod:`keyless.git.tlogpb`) and
the RFC 3161 timestamps, so :mod:`keyless.git.verifying` needs no network. The modules import
their dependencies lazily: git starts the program once per commit.
"""
