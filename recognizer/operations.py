"""Endpoints for operators: /healthz for load balancers and compose, /metrics for Prometheus."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from redis import RedisError

from digitsite.celery import app as celery_app
from recognizer.metrics import queue_depth


def health() -> dict:
    """The database, Redis, at least one live worker, and the queue's depth."""
    checks: dict = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means unhealthy, whatever the backend raises
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        checks["queue_depth"] = queue_depth()
        checks["redis"] = "ok"
    except RedisError as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}"
        checks["workers"] = 0
        return checks
    try:
        # Returns as soon as one worker answers.
        checks["workers"] = len(celery_app.control.ping(timeout=1.0, limit=1))
    except Exception as exc:
        checks["workers"] = 0
        checks["worker_error"] = exc.__class__.__name__
    return checks


async def healthz(request: HttpRequest) -> JsonResponse:
    checks = await sync_to_async(health)()
    healthy = checks["database"] == "ok" and checks["redis"] == "ok" and checks["workers"] >= 1
    return JsonResponse({"status": "ok" if healthy else "unhealthy", **checks}, status=200 if healthy else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
