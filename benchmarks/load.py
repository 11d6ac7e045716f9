"""Sustained load: many concurrent websocket (or HTTP ?wait) clients sending canvas drawings.

    make run-unlimited      # in another terminal (all clients share one address)
    .venv/bin/python -m benchmarks.load --clients 200 --rate 400 --seconds 60
    .venv/bin/python -m benchmarks.load --mode http --clients 50 --rate 100 --seconds 30
    .venv/bin/python -m benchmarks.load --echo ...           # and the bare Celery echo, same Redis

Each client sends at rate/clients drawings per second (open loop: it does not wait for answers).
Prints latency percentiles (submit -> prediction), throughput, errors, drops (drawings whose
prediction never came) and the RSS of the web and worker processes on this machine. With
--echo it first measures the bare Celery echo baseline (benchmarks/echo.py) on the stack's
Redis, and prints the product's throughput as a share of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import requests
import websockets

from benchmarks import echo
from benchmarks.latency import percentile
from training import samples

GRACE = 10.0  # seconds to wait for answers after the last send


class Tally:
    def __init__(self) -> None:
        self.sent, self.latencies, self.errors = 0, [], {}

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1


async def ws_client(url: str, bodies: list[dict], interval: float, until: float, tally: Tally) -> None:
    # Each body's JSON without its braces, so a frame costs the generator one format, not a dumps.
    fields = [json.dumps(body)[1:-1] for body in bodies]
    pending: dict[str, float] = {}
    async with websockets.connect(url, max_size=2**22) as socket:

        async def read() -> None:
            async for frame in socket:
                message = json.loads(frame)
                if message["type"] == "prediction" and message.get("ref") in pending:
                    tally.latencies.append(time.perf_counter() - pending.pop(message["ref"]))
                elif message["type"] == "error":
                    pending.pop(message.get("ref"), None)
                    tally.error(message.get("code", "?"))

        reader = asyncio.create_task(read())
        next_send = time.perf_counter()
        while next_send < until:
            ref = f"{id(socket)}-{tally.sent}"
            pending[ref] = time.perf_counter()
            tally.sent += 1
            # Formatted, not json.dumps'd: the generator shares the CPU with the service it measures.
            await socket.send(f'{{"type": "drawing", "ref": "{ref}", {fields[tally.sent % len(fields)]}}}')
            next_send += interval
            await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
        deadline = time.perf_counter() + GRACE
        while pending and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        reader.cancel()


def http_client(url: str, bodies: list[dict], interval: float, until: float, tally: Tally) -> None:
    session = requests.Session()
    next_send = time.perf_counter()
    while next_send < until:
        started = time.perf_counter()
        tally.sent += 1
        try:
            response = session.post(url, json=bodies[tally.sent % len(bodies)], timeout=30)
            if response.status_code == 200:
                tally.latencies.append(time.perf_counter() - started)
            else:
                tally.error(str(response.status_code))
        except requests.RequestException as exc:
            tally.error(exc.__class__.__name__)
        next_send += interval
        time.sleep(max(0.0, next_send - time.perf_counter()))


def role(process: psutil.Process) -> str | None:
    """Which part of the service a process on this machine is, if any."""
    command = " ".join(process.cmdline())
    if "uvicorn" in command and "digitsite.asgi" in command:
        return "web (uvicorn)"
    if "multiprocessing" in command and role(psutil.Process(process.ppid())) == "web (uvicorn)":
        return "web (uvicorn)"  # one of WEB_PROCESSES: uvicorn's --workers start them so
    if "celery" in command and " beat" in command:
        return "beat (sweeper)"
    if "celery" in command and " worker" in command and "benchmarks.echo" not in command:
        parent = psutil.Process(process.ppid())
        return "worker child (model)" if "celery" in " ".join(parent.cmdline()) else "worker parent"
    if "redis-server" in command:
        return "redis"
    if process.pid == os.getpid():
        return "load generator"
    return None


def service_processes() -> dict[psutil.Process, str]:
    found = {}
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if name := role(process):
                found[process] = name
    return found


def rss_by_role(processes: dict[psutil.Process, str]) -> dict[str, float]:
    """Megabytes of resident memory of the service's processes, the largest of each role."""
    sizes: dict[str, float] = {}
    for process, name in processes.items():
        with contextlib.suppress(psutil.Error):
            sizes[name] = max(sizes.get(name, 0), process.memory_info().rss / 2**20)
    return sizes


def cpu_seconds(processes: dict[psutil.Process, str]) -> dict[str, float]:
    """CPU time (user + system) so far, summed by role."""
    used: dict[str, float] = {}
    for process, name in processes.items():
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            used[name] = used.get(name, 0) + times.user + times.system
    return used


def report(mode: str, clients: int, seconds: float, tally: Tally, cores: dict[str, float]) -> float:
    answered = sorted(tally.latencies)
    dropped = tally.sent - len(answered) - sum(tally.errors.values())

    def pct(share: float) -> float:
        return percentile(answered, share) * 1000 if answered else float("nan")

    print(f"{mode}: {clients} clients for {seconds:g} s, {tally.sent} drawings sent")
    print(f"  throughput: {len(answered) / seconds:.1f} predictions/s")
    print(f"  latency: p50 {pct(0.5):.1f} ms  p95 {pct(0.95):.1f} ms  p99 {pct(0.99):.1f} ms")
    # A drop here is a drawing not answered within GRACE seconds of the last send: under
    # overload that is a backlog still being worked off (it is stored), not a lost drawing.
    print(f"  errors: {tally.errors or 0}   unanswered {GRACE:g} s after the last send (drops): {dropped}")
    print("  CPU while sending (cores): " + ", ".join(f"{name} {used:.2f}" for name, used in cores.items()))
    for name, megabytes in rss_by_role(service_processes()).items():
        print(f"  RSS {name}: {megabytes:.0f} MB")
    return len(answered) / seconds


async def main_async(args) -> None:
    bodies, _ = samples.page_bodies(40, args.input)  # as the page sends them: strokes, or PNG data URLs
    # The baseline first, on an idle stack: measured after the load it would share the CPU
    # with the backlog still draining.
    baseline = echo.measure(echo.stack_redis_url()) if args.echo else None
    tally = Tally()
    interval = args.clients / args.rate
    until = time.perf_counter() + args.seconds
    processes = service_processes()
    before = cpu_seconds(processes)
    loop = asyncio.get_running_loop()
    # CPU is read when the sending stops, before the grace period dilutes it.
    after = loop.call_at(loop.time() + args.seconds, lambda: cpu_after.update(cpu_seconds(processes)))
    cpu_after: dict[str, float] = {}
    if args.mode == "ws":
        url = args.url.replace("http", "ws", 1).rstrip("/") + "/ws/recognize/"
        await asyncio.gather(*(ws_client(url, bodies, interval, until, tally) for _ in range(args.clients)))
    else:
        url = args.url.rstrip("/") + "/api/drawings/?wait=30"
        with ThreadPoolExecutor(args.clients) as pool:  # one thread per client: requests blocks
            await asyncio.gather(
                *(
                    loop.run_in_executor(pool, http_client, url, bodies, interval, until, tally)
                    for _ in range(args.clients)
                )
            )
    after.cancel()
    cores = {name: (cpu_after.get(name, used) - used) / args.seconds for name, used in before.items()}
    throughput = report(args.mode, args.clients, args.seconds, tally, cores)
    if baseline:
        print(
            f"  bare Celery echo, same Redis, just before: round trip p50 {baseline.round_trip_ms:.2f} ms, "
            f"{baseline.per_second:,.0f} tasks/s; the product moved {throughput / baseline.per_second:.2f}x that"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--mode", choices=["ws", "http"], default="ws")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=float, default=400, help="drawings per second, all clients together")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--input", choices=["strokes", "image"], default="strokes", help="what the page sends")
    parser.add_argument("--echo", action="store_true", help="first measure the bare Celery echo baseline")
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
