"""Trust material for the client: where trusted roots and signing configs come from.

* :mod:`keyless.trust.material` - decoded, indexed keys and certificates of a trusted root;
* :mod:`keyless.trust.sources` - the public-good production root shipped as package data, files,
  ``--server URL`` and TUF refresh (protocols.md §10).

Importing this package imports nothing heavy, so the offline verify path stays fast.
"""
