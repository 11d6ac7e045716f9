"""Shared fixtures: a real worker and ASGI server for the tests whose path crosses processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from digitsite.redis_server import free_port
from digitsite.stack import wait_for_port, wait_for_workers, web_command, worker_command

BASE_DIR = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """A URL for the test database that pytest-django created, for the child processes."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def live_server_url(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real Celery worker and uvicorn on the test database and the test Redis."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "digitsite.settings",
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
    }
    logs = tmp_path_factory.mktemp("logs")
    port = free_port()
    started = []
    try:
        for name, command in (("worker", worker_command(1)), ("web", web_command("127.0.0.1", port))):
            log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            started.append(subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=log))
        wait_for_workers(1, started[:1])
        wait_for_port("127.0.0.1", port, started[1])
        yield f"http://127.0.0.1:{port}"
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        for name in ("worker", "web"):
            if (logs / f"{name}.log").exists():
                sys.stderr.write(f"--- {name} log tail ---\n{(logs / f'{name}.log').read_text()[-2000:]}\n")
