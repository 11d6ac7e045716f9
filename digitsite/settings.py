"""Settings for digits, read from the environment once, with defaults that run on a fresh machine.

Every variable is listed in .env.example. Nothing needs to be set for `make run` or `make test`.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

# Strict parsers: a value they cannot read raises ImproperlyConfigured naming the variable.
from digitsite.env import envbool, envint, envlist

BASE_DIR = Path(__file__).resolve().parent.parent


def local_secret_key() -> str:
    """A key made once per checkout and kept out of git, so a fresh machine needs no setup."""
    path = BASE_DIR / ".secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def production_secret_key(key: str | None) -> str:
    """SECRET_KEY where the site is served for real (HTTPS=true): given, and not weak or a placeholder.

    A key made on the spot (`local_secret_key`) would differ between containers, so that staff
    sessions and signed values broke from one web pod to the next; a placeholder signs for anyone.
    """
    if not key:
        raise ImproperlyConfigured("SECRET_KEY must be set where HTTPS=true: every web process signs with it")
    if len(key) < 50 or len(set(key)) < 5 or "REPLACE_ME" in key or key.startswith("django-insecure-"):
        raise ImproperlyConfigured(
            "SECRET_KEY is a placeholder or too weak: give at least 50 random characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    return key


DEBUG = envbool("DEBUG", False)
# HTTPS=true where the site is served over TLS (usually by a proxy that sets
# X-Forwarded-Proto): secure cookies, redirects to https and HSTS. Off for `make run`,
# which serves plain HTTP on localhost, where secure cookies would lock staff out.
HTTPS = envbool("HTTPS", False)
# Production sets SECRET_KEY (docker-compose.yml requires it); `make run` needs nothing.
SECRET_KEY = (
    production_secret_key(os.environ.get("SECRET_KEY")) if HTTPS else os.environ.get("SECRET_KEY") or local_secret_key()
)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = 31_536_000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "ninja",
    "recognizer",
    "training",  # its management commands: retrain, export_drawings
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "recognizer.middleware.api_http",  # before CommonMiddleware, whose 301 it replaces under /api/
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "digitsite.urls"
ASGI_APPLICATION = "digitsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite by default: one file, single machine. Workers on other machines need PostgreSQL
# (DATABASE_URL=postgres://...).
DB_CONN_MAX_AGE = envint("DB_CONN_MAX_AGE", None)  # None: unset
# PostgreSQL ends the session of a client that vanished (a worker whose network dropped) within
# about ten seconds, and with it the row locks it held: TCP keepalives and a timeout for unanswered
# data find a dead peer whatever state its session was left in, idle in a transaction or halfway
# through a pipelined executemany (where the idle-in-transaction timeout never fires). A live
# client's long transaction is left alone (tests/test_multihost.py cuts a client off).
POSTGRES_SESSION_OPTIONS = (
    "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3 -c tcp_user_timeout=10000"
)
DATABASES = {
    # An empty DATABASE_URL (as in .env.example) means the default too.
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=DB_CONN_MAX_AGE or 0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at the
        # start of a transaction, so the web and the workers wait (timeout) instead of
        # failing with "database is locked" halfway through.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    if DB_CONN_MAX_AGE is None:
        # Opening a SQLite connection with its PRAGMAs costs ~2 ms: more than storing a drawing.
        DATABASES["default"]["CONN_MAX_AGE"] = None
else:  # an `options` in DATABASE_URL's query string replaces these
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", POSTGRES_SESSION_OPTIONS)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# The model a worker predicts with while no version is active in the admin; empty: the shipped
# file, worker/artifacts/model.keras. Workers load its LiteRT export beside it (model.tflite).
MODEL_PATH = os.environ.get("MODEL_PATH", "")

# Redis carries Celery's tasks and the channel layer's pushes. `make run` starts an
# embedded one and sets REDIS_URL; this default is for processes started by hand.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Every Redis client gives up on a Redis that stops answering (packets dropped rather than
# refused) instead of waiting for TCP's own timeouts, minutes later: connecting takes
# milliseconds on a working network, so 2 s means it is not coming.
REDIS_CONNECT_TIMEOUT = 2

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # The layer's receive blocks in Redis for up to 5 s (BZPOPMIN with channels-redis's
        # brpop_timeout), so a read may take that long on a healthy Redis: 8 s leaves a margin,
        # and stays under the worker's soft time limit (10 s) for a push.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": 8, "socket_connect_timeout": REDIS_CONNECT_TIMEOUT}]
        },
    }
}

# Celery (read by digitsite/celery.py with namespace "CELERY").
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Results live in the database; a result backend would be a second, unread copy.
CELERY_TASK_IGNORE_RESULT = True
# Acknowledge after the task ran, and put the message back if the worker died on it,
# so a crash never loses a drawing. The task is idempotent, so a redelivery is harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A message taken by a worker that then died (SIGKILL, power loss) is handed out again
# after this many seconds. A prediction takes milliseconds and each worker holds one
# message at a time, so a live worker never comes near it.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": envint("VISIBILITY_TIMEOUT", 60),
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
    # Publishing, acks and the sweeper's reads are single commands answered in milliseconds;
    # a publish to a Redis that went silent blocks its web request this long at most. The
    # worker's blocking BRPOP (1 s) runs in its event loop, which no socket timeout governs.
    "socket_timeout": 3,
    "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
}
# Give up publishing quickly when Redis is down: the drawing is already stored as queued
# and the sweeper queues it again, while a web thread blocked on retries serves nobody.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_CONNECT_TIMEOUT
# One task in hand per worker process: an idle worker is never stuck behind a busy one.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Each worker runs a pool of one child process that holds the model (scale out with
# WORKERS=N or --scale worker=N). The parent takes messages from Redis and watches the
# child: a child that dies or hangs is replaced, and its drawing handed out again.
CELERY_WORKER_POOL = "prefork"
CELERY_WORKER_CONCURRENCY = envint("WORKER_CONCURRENCY", 1)
# Celery's Django fixup closes the database connection after every task unless told to keep
# it for this many tasks; reopening SQLite with its PRAGMAs costs ~2 ms, more than a prediction.
CELERY_DB_REUSE_MAX = 10_000
# A prediction takes milliseconds; these only end a child that hangs.
CELERY_TASK_SOFT_TIME_LIMIT = 10
CELERY_TASK_TIME_LIMIT = 20
# Loading TensorFlow and the model in a new child takes seconds; the default 4 s would kill it.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = 60
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Task events feed Flower; they cost a Redis publish per task, so only where Flower runs.
CELERY_WORKER_SEND_TASK_EVENTS = envbool("TASK_EVENTS", False)
# Micro-batching: a task takes its own drawing and, when more are queued behind it, up to
# PREDICT_BATCH in all, predicted in one call, stored in one transaction and pushed
# together. Nothing waits for a batch to fill, so at light load a batch is one drawing.
# PREDICT_BATCH=1 turns it off. A drawing a worker took is left to it for CLAIM_SECONDS;
# after that (the worker died) another task may take it.
PREDICT_BATCH = envint("PREDICT_BATCH", 64)
CLAIM_SECONDS = envint("CLAIM_SECONDS", 5)
# A batch also stops before its images hold PREDICT_BATCH_PIXELS pixels in all (a task's own
# drawing always goes), so that no batch of large images comes near the soft time limit:
# reading a drawing costs the worker about 40 ns a pixel (a busy 2-core machine), so 16 M is
# about 0.6 s; 64 canvases of 280x280 are 5 M.
PREDICT_BATCH_PIXELS = envint("PREDICT_BATCH_PIXELS", 16_000_000)
# A drawing taken this many times without an answer stored (each time its worker died or its
# task failed) ends `failed` the next time it is taken, instead of being tried for ever. A
# drawing tried before is tried alone, so its batch-mates are answered meanwhile.
MAX_ATTEMPTS = envint("MAX_ATTEMPTS", 3)
# The sweeper: every SWEEP_INTERVAL seconds, drawings still queued STALE_AFTER seconds
# after they were last queued are queued again (Redis restarted empty, a publish failed).
SWEEP_INTERVAL = envint("SWEEP_INTERVAL", 10)
STALE_AFTER = envint("STALE_AFTER", 30)
# Backpressure: while more than MAX_BACKLOG drawings wait for a prediction, new drawings are
# refused (503 with Retry-After; an `overloaded` frame) before they are stored. 3,000 is about
# 9 s of work at the ~350 drawings/s that one 2-core machine sustained on a good day
# (BENCHMARKS.md): as long as a person waits for an answer. Raise it with the workers. 0 turns
# it off. The web counts the queued drawings at most once a second per process.
MAX_BACKLOG = envint("MAX_BACKLOG", 3000)
# The sweeper re-publishes only drawings whose messages are gone, so it reads the queue's
# messages (~1 KB each) first; backpressure keeps the queue near MAX_BACKLOG, and past this
# many it publishes nothing until the queue is shorter.
SWEEP_READ_LIMIT = 2 * MAX_BACKLOG if MAX_BACKLOG else 10_000
# Retention: every day, unreviewed drawings older than RETAIN_DAYS days are deleted (labelled
# ones are training data and are kept; model versions are never touched). 0 keeps every
# drawing for ever, as DESIGN.md promises; `manage.py purge_drawings --older-than DAYS` does
# the same by hand.
RETAIN_DAYS = envint("RETAIN_DAYS", 0)
# Each expires after its interval: a newer one is sent by then, so while no worker runs the sweeps
# do not pile up to be run back to back when workers return (they are dropped, with an INFO line).
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-drawings": {
        "task": "worker.tasks.requeue_stale_drawings",
        "schedule": SWEEP_INTERVAL,
        "options": {"expires": SWEEP_INTERVAL},
    },
    # A time of day rather than "every 24 h": beat restarted within a day would never get there.
    "purge-old-drawings": {
        "task": "worker.tasks.purge_old_drawings",
        "schedule": crontab(hour=3, minute=30),
        "options": {"expires": 24 * 3600},
    },
}
# Beat's tasks go to a queue of their own, which workers also take from: the drawings' queue,
# whose length /healthz and /metrics report (queue_depth) and the sweeper reads, holds drawings
# only, and a sweep does not wait behind a backlog of drawings (a worker takes from both in turn).
MAINTENANCE_QUEUE = "maintenance"
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name)
    for name in ("celery", MAINTENANCE_QUEUE)  # "celery": the default
]
CELERY_TASK_ROUTES = {
    task: {"queue": MAINTENANCE_QUEUE}
    for task in ("worker.tasks.requeue_stale_drawings", "worker.tasks.purge_old_drawings")
}

# Drawings a client may send per minute, over HTTP and the websocket together; counted in
# Redis so that the limit holds across web processes. 0 turns it off (benchmarks, tests).
RATE_LIMIT = envint("RATE_LIMIT", 300)
# Reads per client per minute: a drawing's status over the websocket, GET /api/drawings/<id>/
# and feedback, in a bucket of their own (a client polling for a result makes several a
# drawing). 0 turns it off.
READ_RATE_LIMIT = envint("READ_RATE_LIMIT", 600)
# Websockets one client may hold open at once (0: no cap); counted in Redis across web processes.
MAX_CONNECTIONS_PER_CLIENT = envint("MAX_CONNECTIONS_PER_CLIENT", 50)
# The proxies (addresses or CIDRs) whose X-Forwarded-For names the client: uvicorn takes the
# client address from it only when the connection comes from one of them (digitsite/stack.py),
# so limits count real clients behind a proxy and nobody else can choose their own bucket.
# Empty: trust no one, the address is the connection's.
TRUSTED_PROXIES = envlist("TRUSTED_PROXIES", "")
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_proxy!r} is not an address or a CIDR network") from None

# The operator endpoints: /healthz answers what it saw at most HEALTH_CACHE_SECONDS ago;
# /metrics reads the database at most every METRICS_CACHE_SECONDS per web process, and with
# METRICS_TOKEN set it answers only requests with `Authorization: Bearer <METRICS_TOKEN>`.
HEALTH_CACHE_SECONDS = envint("HEALTH_CACHE_SECONDS", 5)
METRICS_CACHE_SECONDS = envint("METRICS_CACHE_SECONDS", 5)
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

# Input limits: bytes of an image file, its pixels, and a request or websocket frame
# (base64 makes a file a third larger). Sized for canvases, with room to spare: our page
# sends its pad at the screen's pixel density (at most ~1,350 px square at devicePixelRatio
# 3). A digit on a 2000x2000 canvas (a tablet at DPR 2, a large phone canvas at DPR 3) with
# anti-aliased strokes measured 70-260 KB as PNG (a few strokes to many, default to fastest
# compression); at 280 px, 3-15 KB. 2560x2560 takes that canvas and a 1600x2560 tablet
# screen, and decodes to 26 MB in the worker.
MAX_IMAGE_BYTES = envint("MAX_IMAGE_BYTES", 512 * 1024)
MAX_IMAGE_PIXELS = envint("MAX_IMAGE_PIXELS", 2560 * 2560)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_IMAGE_BYTES * 4 // 3 + 64 * 1024
# Bytes of drawings one client may send per hour (as received: a data URL counts its base64),
# counted in Redis next to RATE_LIMIT; then 429 `byte_budget` until the hour is over. 100 MiB
# is ~1,000 drawings from a phone at DPR 3 (~100 KB each as a data URL), a drawing every
# 3.6 s for a whole hour; a script sending the largest images is stopped after 150-200 of
# them. It bounds what one client adds to the disk at 2.4 GiB a day (before: 2 MiB x 300 a
# minute, 844 GiB). 0 turns it off.
BYTE_BUDGET = envint("BYTE_BUDGET", 100 * 1024 * 1024)
# The longest a POST /api/drawings/?wait= may hold the request.
MAX_WAIT_SECONDS = 30

LOG_LEVEL = os.environ.get("LOG_LEVEL") or "INFO"
# For the loggers whose INFO lines repeat for ever and say nothing the database does not.
ROUTINE_LEVEL = "WARNING" if LOG_LEVEL == "INFO" else LOG_LEVEL
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {
        "client_mistakes": {"()": "digitsite.logs.ClientMistakes"},
        "broker_outage": {"()": "digitsite.logs.BrokerOutage"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["client_mistakes"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Celery's two INFO lines per task ("received", "succeeded in"), hundreds a second under load,
    # say nothing the stored drawing does not (its timings, its model); failures still log.
    "loggers": {
        **{name: {"level": ROUTINE_LEVEL} for name in ("celery.worker.strategy", "celery.app.trace")},
        # uvicorn's records go to its own handler, not the console above: the filter goes on its logger.
        "uvicorn.error": {"filters": ["client_mistakes"]},
        # Beat's "Sending due task" every SWEEP_INTERVAL (10 s), for ever; a sweep that found
        # drawings to queue again says so at INFO in the worker. Beat's banner is printed, not logged.
        "celery.beat": {"level": ROUTINE_LEVEL, "filters": ["broker_outage"]},
    },
}
