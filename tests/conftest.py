"""Shared fixtures: a real worker and ASGI server for the tests whose path crosses processes."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, connections

from digitsite.redis_server import free_port
from digitsite.stack import beat_command, stop, wait_for_port, wait_for_workers, web_command, worker_command
from training import mnist, samples

BASE_DIR = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """A URL for the test database that pytest-django created, for the child processes."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


class Processes:
    """Child processes on the test database and Redis, each logging to a file."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen] = []
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "digitsite.settings",
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "RATE_LIMIT": "0",
            "READ_RATE_LIMIT": "0",
            "MAX_CONNECTIONS_PER_CLIENT": "0",
            "BYTE_BUDGET": "0",
            # Scrapes before and after a drawing must both read the database (test_operations
            # checks the cache itself in process).
            "METRICS_CACHE_SECONDS": "0",
            # Fast recovery, so that the fault tests finish in seconds.
            "VISIBILITY_TIMEOUT": "5",
            "SWEEP_INTERVAL": "1",
            "STALE_AFTER": "3",
        }

    def start(self, name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env or self.env, stdout=log, stderr=log)
        self.started.append(process)
        return process

    def start_web(self, port: int) -> subprocess.Popen:
        web = self.start(f"web-{port}", web_command("127.0.0.1", port))
        wait_for_port("127.0.0.1", port, web)
        return web

    def stop(self) -> None:
        stop(self.started)
        for log in sorted(self.logs.glob("*.log")):
            sys.stderr.write(f"--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-1500:]}\n")


@pytest.fixture(autouse=True)
def connection_kept_in_the_test_transaction(request, monkeypatch):
    """What Django's test client does for its request signals: a test run inside a transaction keeps
    its connection. Channels' database hop would close it (its transaction looks left open)."""
    marker = request.node.get_closest_marker("django_db")
    if marker and not marker.kwargs.get("transaction"):
        monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


@pytest.fixture
async def async_orm_connections_closed():
    """Closes the connections of asgiref's one thread, where the async ORM and sync_to_async run
    outside a request, as the end of a request does in the server. An async test uses them outside
    any request, and the thread outlives the test: its connection, left open, kept PostgreSQL from
    dropping the test database at the end of the run. (So a test's own ORM calls go through
    sync_to_async: asyncio.to_thread's threads are out of this fixture's reach.)"""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture(autouse=True)
def connections_closed_after_an_async_test(request):
    """async_orm_connections_closed for the async tests only: an async fixture costs every test a turn of the loop."""
    if inspect.iscoroutinefunction(request.function):
        request.getfixturevalue("async_orm_connections_closed")


@pytest.fixture(scope="session")
def mnist_test() -> tuple:
    """MNIST's full test split, for the evaluations that need real data; skipped where it is absent."""
    try:
        return mnist.load("test")
    except FileNotFoundError as exc:
        pytest.skip(f"needs the MNIST files, which a bare clone lacks ({exc}); CI reads ../shared/data/mnist")


@pytest.fixture(scope="session", params=["made", "mnist"])
def test_digits(request) -> tuple:
    """Digits (N, 28, 28) uint8 and labels: the project's own sample, and MNIST test where it is present."""
    if request.param == "made":
        return samples.digits(500)
    return request.getfixturevalue("mnist_test")


@pytest.fixture(scope="session")
def processes(django_db_setup, django_db_blocker, tmp_path_factory):
    children = Processes(tmp_path_factory.mktemp("logs"))
    yield children
    children.stop()


@pytest.fixture(scope="session")
def live_server_url(processes):
    """A real Celery worker, the sweeper and uvicorn on the test database and the test Redis."""
    worker = processes.start("worker", worker_command("worker1@%h"))
    processes.start("beat", beat_command())
    port = free_port()
    processes.start_web(port)
    wait_for_workers(1, [worker])
    return f"http://127.0.0.1:{port}"
