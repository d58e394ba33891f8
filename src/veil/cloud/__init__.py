"""The cloud side of Veil: ``veil serve`` runs the frozen detector on obfuscated frames.

``app`` (the FastAPI service), ``auth`` (per-camera tokens), ``state`` (what workers share),
``metrics`` (Prometheus) and ``dashboard/`` (the page the service serves at ``/``).
"""
