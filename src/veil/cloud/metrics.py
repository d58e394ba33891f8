"""Prometheus metrics of the service: requests, latency, and people per camera.

One ``veil serve`` process exposes its own metrics, as any scraped instance does. With
``--workers N`` uvicorn forks N processes behind one port; ``veil serve`` then sets
``PROMETHEUS_MULTIPROC_DIR`` and prometheus-client's multiprocess mode sums them, so
``/metrics`` answers for the whole service whichever worker serves the scrape.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("veil_requests", "HTTP requests by route and status.", ["route", "status"])
LATENCY = Histogram("veil_request_seconds", "Request latency by route.", ["route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
FRAMES = Counter("veil_frames", "Frames analysed, by camera.", ["camera"])
PEOPLE = Gauge("veil_people", "People counted in the camera's latest frame.", ["camera"],
               multiprocess_mode="mostrecent")


def render() -> tuple[bytes, str]:
    """The metrics page body and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
