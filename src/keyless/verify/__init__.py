"""The Sigstore bundle verifier (protocols.md §9).

Public API: :class:`keyless.verify.verifier.Verifier`, :class:`keyless.verify.artifact.Artifact`,
the policies in :mod:`keyless.verify.policy` and the errors in :mod:`keyless.verify.errors`.
Submodules are imported explicitly by callers, keeping ``import keyless.verify`` cheap.
"""
