"""The ceiling of the architecture: a bare Celery echo task over the same Redis, no Django, no model.

    .venv/bin/python -m benchmarks.echo [--redis URL] [--count 3000]

Starts its own Celery worker (one process, the solo pool: the fastest bare configuration;
ECHO_POOL=prefork for a pool of one child like the product's workers) on a queue of its own,
then measures the round trip of one task at a time (send -> result) and
the throughput of many in flight. Without --redis it uses the Redis of the running stack
(read from the web server's environment, which `make run` gives its embedded Redis URL).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import psutil
from celery import Celery

QUEUE = "echo-benchmark"
POOL = os.environ.get("ECHO_POOL", "solo")  # the fastest bare worker: the ceiling
app = Celery("echo", broker=os.environ.get("REDIS_URL"), backend=os.environ.get("REDIS_URL"))
app.conf.update(task_default_queue=QUEUE, worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)


@app.task(name="echo")
def echo(value: int) -> int:
    return value


@dataclass
class Baseline:
    round_trip_ms: float
    per_second: float


def stack_redis_url() -> str:
    """The REDIS_URL of the running web server on this machine (the embedded one has a free port)."""
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if "uvicorn" in command and "digitsite.asgi" in command:
            url = process.environ().get("REDIS_URL")
            if url:
                return url
    return "redis://127.0.0.1:6379/0"


def measure(redis_url: str, count: int = 3000) -> Baseline:
    """Start an echo worker against redis_url, measure, stop it."""
    app.conf.update(broker_url=redis_url, result_backend=redis_url)
    command = [
        sys.executable,
        "-m",
        "celery",
        "--quiet",
        "-A",
        "benchmarks.echo",
        "worker",
        "--pool",
        POOL,
        "--concurrency",
        "1",
        "--queues",
        QUEUE,
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "warning",
    ]
    worker = subprocess.Popen(command, env={**os.environ, "REDIS_URL": redis_url})
    try:
        echo.delay(0).get(timeout=60)  # the worker is up
        trips = []
        for i in range(300):
            started = time.perf_counter()
            echo.delay(i).get(timeout=10)
            trips.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        results = [echo.delay(i) for i in range(count)]
        for result in results:
            result.get(timeout=60)
        return Baseline(statistics.median(trips), count / (time.perf_counter() - started))
    finally:
        worker.terminate()
        worker.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default=None, help="default: the running stack's Redis")
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args()
    url = args.redis or stack_redis_url()
    baseline = measure(url, args.count)
    print(
        f"bare Celery echo over {url}: round trip p50 {baseline.round_trip_ms:.2f} ms, "
        f"{baseline.per_second:,.0f} tasks/s with {args.count} in flight"
    )


if __name__ == "__main__":
    main()
