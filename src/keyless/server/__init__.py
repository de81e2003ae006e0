"""The composition root: configuration, first-start initialisation, the data directory, secrets
and their key-encryption key, key rotation, the wiring of every service into one
:class:`~keyless.server.stack.Stack` and the app factory that serves it
(:func:`keyless.server.app.create_app`). Nothing below this package imports it; the HTTP plumbing
the services share lives in :mod:`keyless.http`."""
