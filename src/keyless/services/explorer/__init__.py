"""The log explorer: a server-rendered, JavaScript-free face for every log of the instance.

``GET P/`` searches (e-mail or other SAN, ``sha256:`` digest or bare hex, log index, key
fingerprint) across the Rekor v1 and v2 shards and the CT log; ``P/explorer/entry/LOG/INDEX``
shows one entry with its decoded certificate and an inclusion proof verified on the server;
``P/explorer/status`` shows each log's tree and the CA and TSA chains. The service
(:mod:`.service`) is framework-free; :mod:`.routes` renders it with autoescaped Jinja2 templates
under a strict Content-Security-Policy.
"""

from keyless.services.explorer.service import ExplorerService

__all__ = ["ExplorerService"]
