"""A C2SP tlog-witness: cosigns checkpoints of the logs it follows (``keyless witness serve``).

:mod:`.service` holds the protocol (framework-free), :mod:`.store` the durable per-log state,
:mod:`.keys` the witness's keys, :mod:`.routes` the HTTP routes and :mod:`.app` the ASGI app.
"""
