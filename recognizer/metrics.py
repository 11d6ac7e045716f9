"""Prometheus metrics: counters kept by each web process, and figures read from the shared
database and Redis at scrape time (so they cover every worker on every machine)."""

from __future__ import annotations

import contextlib

import redis
from django.conf import settings
from django.db.models import Count
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from recognizer.models import Drawing

DRAWINGS_RECEIVED = Counter("digits_drawings_received", "Drawings accepted and stored", ["source"])
DRAWINGS_REFUSED = Counter("digits_drawings_refused", "Drawings refused, by error code", ["code"])
END_TO_END_LATENCY = Histogram(
    "digits_end_to_end_latency_seconds",
    "From receipt to stored prediction, for results this web process handed to a client",
    buckets=(0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUEUE = "celery"  # Celery's default queue: a Redis list


def queue_depth() -> int:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        return client.llen(QUEUE)
    finally:
        client.close()


def observe_result(result: dict) -> None:
    if result.get("latency_ms") is not None:
        END_TO_END_LATENCY.observe(result["latency_ms"] / 1000)


class StoredFigures:
    """Drawings by status and by model version, and the queue's depth, read when scraped."""

    def describe(self):
        # Without this the registry would call collect(), and query the database, on import.
        yield CounterMetricFamily("digits_predictions", "", labels=["model_version", "status"])
        yield GaugeMetricFamily("digits_drawings_queued", "")
        yield GaugeMetricFamily("digits_queue_depth", "")

    def collect(self):
        predictions = CounterMetricFamily(
            "digits_predictions", "Drawings answered, by model version and status", labels=["model_version", "status"]
        )
        rows = Drawing.objects.exclude(status=Drawing.Status.QUEUED).values("model_version", "status")
        for row in rows.annotate(n=Count("id")).order_by():
            predictions.add_metric([row["model_version"] or "none", row["status"]], row["n"])
        yield predictions
        waiting = Drawing.objects.filter(status=Drawing.Status.QUEUED).count()
        yield GaugeMetricFamily("digits_drawings_queued", "Drawings stored and not yet answered", value=waiting)
        # When Redis is down /healthz says so; the other figures still count.
        with contextlib.suppress(redis.RedisError):
            yield GaugeMetricFamily("digits_queue_depth", "Messages waiting in the Celery queue", value=queue_depth())


REGISTRY.register(StoredFigures())
