"""Endpoints for operators: /healthz for load balancers and compose, /metrics for Prometheus.

Both are public by default and must cost little however often they are called: /healthz is
answered from what this process saw at most HEALTH_CACHE_SECONDS ago (a few indexed queries,
one Celery ping), /metrics reads the database at most every METRICS_CACHE_SECONDS
(recognizer.metrics) and, with METRICS_TOKEN set, answers only `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis import RedisError

from digitsite.celery import app as celery_app
from recognizer import worker_state
from recognizer.errors import Refused
from recognizer.metrics import Cached, oldest_queued_seconds, queue_depth, scraped
from recognizer.models import ModelVersion
from recognizer.views import read_only


def health() -> dict:
    """The database, Redis, at least one live worker, the queue's depth and its oldest drawing's age."""
    checks: dict = {}
    try:
        checks["oldest_queued_seconds"] = oldest_queued_seconds()  # an indexed query: the database answers
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
        # Returns as soon as one worker answers: enough to know the workers are alive ...
        answering = len(celery_app.control.ping(timeout=1.0, limit=1))
    except Exception as exc:
        answering = 0
        checks["worker_error"] = exc.__class__.__name__
    checks["models"] = model_states()
    # ... and how many there are is what the processes holding a model last reported (1 said two
    # workers were one, to an operator counting them).
    holding = checks["models"].get("workers")
    checks["workers"] = len(holding) if answering and holding else answering
    return checks


def model_states() -> dict:
    """The model each live worker process holds (recognizer.worker_state), and any that cannot serve the active one.

    A complaint counts only while the version a worker could not load is still active: after
    a rollback the workers switch at their next look, and /healthz is green at once.
    """
    try:
        active = ModelVersion.objects.filter(is_active=True).values_list("version", flat=True).first()
        client = worker_state.client()
        try:
            workers = worker_state.read(client)
        finally:
            client.close()
    except Exception as exc:  # cannot tell, so not healthy
        return {"problems": [f"cannot read the workers' model states ({exc.__class__.__name__})"]}
    problems = [
        f"{worker} cannot load {active or 'the shipped model'} ({state['error']}); it predicts with {state['serving']}"
        for worker, state in workers.items()
        if state.get("error") and state.get("wanted") == active
    ]
    return {"active": active, "workers": workers, "problems": problems}


def verdict() -> dict:
    """health() with its status: "ok" or "unhealthy"."""
    try:
        checks = health()
    finally:
        close_old_connections()  # it runs in a thread of its own (healthz): end its connection as a request would
    models = checks.get("models", {})
    if checks.get("workers") and "workers" in models and not models["workers"]:
        # A worker's main process answers the ping, but no process holding a model has written its
        # state within worker_state.TTL: its pool child is hung, or dies at start and is restarted.
        silent = f"no worker process holding a model has reported in {worker_state.TTL:g} s (hung or restarting)"
        models["problems"] = [*models["problems"], silent]
    healthy = checks["database"] == "ok" and checks["redis"] == "ok" and checks["workers"] >= 1
    healthy = healthy and not models.get("problems")  # every live worker serves the active model
    return {"status": "ok" if healthy else "unhealthy", **checks}


HEALTH = Cached(verdict, "HEALTH_CACHE_SECONDS")


@read_only
async def healthz(request: HttpRequest) -> JsonResponse:
    # Not on the thread every other database call of this process waits for: without workers
    # the ping waits its whole timeout.
    answer = HEALTH.fresh() or await sync_to_async(HEALTH.get, thread_sensitive=False)()
    return JsonResponse(answer, status=200 if answer["status"] == "ok" else 503)


@read_only
def metrics(request: HttpRequest) -> HttpResponse:
    if token := settings.METRICS_TOKEN:
        # The scheme is case-insensitive (RFC 7235: "bearer" is Bearer); the token is not.
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            response = Refused("unauthorized", "send Authorization: Bearer <METRICS_TOKEN>", 401).response()
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        if not hmac.compare_digest(given.strip(" ").encode(), token.encode()):
            return Refused("forbidden", "wrong metrics token", 403).response()
    return HttpResponse(generate_latest(scraped), content_type=CONTENT_TYPE_LATEST)
