"""Test settings: the project's settings on a private Redis and a file-backed test database.

The Redis is started here, before Django reads REDIS_URL, unless REDIS_URL is already set.
The test database is a file so that the worker and web processes the integration tests
start can share it.
"""

import atexit
import os
from pathlib import Path

from digitsite.redis_server import EmbeddedRedis

if not os.environ.get("REDIS_URL"):
    _redis = EmbeddedRedis(Path(__file__).resolve().parent.parent / ".run" / "test-redis")
    atexit.register(_redis.stop)
    os.environ["REDIS_URL"] = _redis.url

from digitsite.settings import *  # noqa: F403
from digitsite.settings import BASE_DIR, DATABASES

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / ".run" / f"test-{os.getpid()}.sqlite3")}
RATE_LIMIT = READ_RATE_LIMIT = MAX_CONNECTIONS_PER_CLIENT = BYTE_BUDGET = 0  # the limit tests turn them on
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
