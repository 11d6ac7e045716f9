"""Prometheus metrics: counters kept by each web process, and figures read from the shared
database and Redis (so they cover every worker on every machine), at most once every
METRICS_CACHE_SECONDS per process however often /metrics is scraped.

Several web processes behind one port (WEB_PROCESSES, digitsite.stack.shared_metrics) write their
counters to files in PROMETHEUS_MULTIPROC_DIR instead, and a scrape, which any one of them answers,
reads them all (`scraped`): otherwise each scrape would show one process's counts, and Prometheus
would take every switch between them for a reset.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import redis
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily

from recognizer.models import Drawing

DRAWINGS_RECEIVED = Counter("digits_drawings_received", "Drawings accepted and stored", ["source"])
DRAWINGS_REFUSED = Counter("digits_drawings_refused", "Drawings refused, by error code", ["code"])
RATE_LIMITED = Counter(
    "digits_rate_limited", "Requests refused by a per-client limit, by limit: drawings, reads, connections", ["limit"]
)
END_TO_END_LATENCY = Histogram(
    "digits_end_to_end_latency_seconds",
    "From receipt to stored prediction, for results this web process handed to a client",
    buckets=(0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUEUE = "celery"  # Celery's default queue: a Redis list
log = logging.getLogger(__name__)
T = TypeVar("T")


class Cached(Generic[T]):
    """What `read()` returns, read again at most once every `settings.<setting>` seconds in this process.

    For the operator endpoints: a flood of scrapes or health checks costs one read per period.
    A caller that finds the value stale while another thread reads it waits for that read
    instead of starting its own.
    """

    def __init__(self, read: Callable[[], T], setting: str) -> None:
        self.read, self.setting = read, setting
        self.lock = threading.Lock()
        self.value: tuple[float, T] | None = None  # (when it was read, monotonic; what was read)

    def fresh(self) -> T | None:
        """The value if it is fresh, else None; never reads or waits (safe on the event loop)."""
        value = self.value
        if value is not None and time.monotonic() - value[0] < getattr(settings, self.setting):
            return value[1]
        return None

    def get(self) -> T:
        with self.lock:
            if (value := self.fresh()) is None:
                value = self.read()
                self.value = (time.monotonic(), value)
            return value

    def forget(self) -> None:
        self.value = None


def queue_depth() -> int:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        return client.llen(QUEUE)
    finally:
        client.close()


def oldest_queued_seconds() -> float:
    """The age of the oldest drawing still queued, in seconds; 0 when none waits (one indexed query)."""
    queued = Drawing.objects.filter(status=Drawing.Status.QUEUED).order_by("created_at")
    oldest = queued.values_list("created_at", flat=True).first()
    return round((timezone.now() - oldest).total_seconds(), 3) if oldest else 0.0


def observe_result(result: dict) -> None:
    if result.get("latency_ms") is not None:
        END_TO_END_LATENCY.observe(result["latency_ms"] / 1000)


class StoredFigures:
    """Drawings by status and by model version, the queue's depth and its oldest drawing's age.

    The GROUP BY reads every answered drawing, so it runs at most once every
    METRICS_CACHE_SECONDS per process (scrapes in between get the same figures).
    """

    def __init__(self) -> None:
        self.cached = Cached(self.read, "METRICS_CACHE_SECONDS")

    def describe(self):
        # Without this the registry would call collect(), and query the database, on import.
        yield GaugeMetricFamily("digits_answered_drawings", "", labels=["model_version", "status"])
        yield GaugeMetricFamily("digits_drawings_queued", "")
        yield GaugeMetricFamily("digits_oldest_queued_seconds", "")
        yield GaugeMetricFamily("digits_queue_depth", "")

    def collect(self):
        return self.cached.get()

    def read(self) -> list:
        figures = []
        # When the database or Redis is down /healthz says so; the other figures still go out.
        try:
            # A gauge, not a counter: it counts the rows kept, and purging old drawings lowers it.
            predictions = GaugeMetricFamily(
                "digits_answered_drawings",
                "Drawings answered and still stored, by model version and status",
                labels=["model_version", "status"],
            )
            rows = Drawing.objects.exclude(status=Drawing.Status.QUEUED).values("model_version", "status")
            for row in rows.annotate(n=Count("id")).order_by():
                predictions.add_metric([row["model_version"] or "none", row["status"]], row["n"])
            waiting = Drawing.objects.filter(status=Drawing.Status.QUEUED).count()
            figures += [
                predictions,
                GaugeMetricFamily("digits_drawings_queued", "Drawings stored and not yet answered", value=waiting),
                GaugeMetricFamily(
                    "digits_oldest_queued_seconds", "Age of the oldest drawing not yet answered",
                    value=oldest_queued_seconds(),
                ),
            ]  # fmt: skip
        except DatabaseError as exc:
            log.warning("metrics without the database's figures: %s", exc.__class__.__name__)
        with contextlib.suppress(redis.RedisError):
            figures.append(
                GaugeMetricFamily("digits_queue_depth", "Messages waiting in the Celery queue", value=queue_depth())
            )
        return figures


STORED_FIGURES = StoredFigures()
REGISTRY.register(STORED_FIGURES)


def _scraped() -> CollectorRegistry:
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    # Every process's counters and histograms, summed; the figures from the database and Redis once.
    # (The per-process figures of REGISTRY, CPU and memory, would mean little summed: left out.)
    every_process = CollectorRegistry()
    multiprocess.MultiProcessCollector(every_process)
    every_process.register(STORED_FIGURES)
    return every_process


scraped = _scraped()  # what /metrics reads
