"""``keyless monitor``: follow transparency logs, prove them append-only, report watched signers.

The monitor keeps an append-only history of the checkpoints it verified (:mod:`.state`), reads
each new checkpoint and every new entry of a Rekor v2 log from its C2SP tlog-tiles (:mod:`.tiles`)
or of a Rekor v1 log through its API (:mod:`.rekorv1`) or of a CT log from its static-ct-api tiles
(:mod:`.staticct`), checks that the entries hash to the
checkpoint's root and that the tree extends the last verified one (:mod:`.follow`), and reports
entries whose certificate chains to the trusted CA and names a watched identity, issuer or key
(:mod:`.watch`). Each report is one JSON event (:mod:`.events`). The monitor is a client: it
imports nothing of the server side.
"""
