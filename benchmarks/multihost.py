"""Throughput with workers on 1, 2 and 3 hosts: the multi-host test's site under one fixed load.

    sudo .venv/bin/python -m benchmarks.multihost --seconds 20 --hosts 1 2 3

For each number of worker hosts, a fresh site built as tests/test_multihost.py builds it
(tests/hosts.py): the web, Redis, a private PostgreSQL and beat in a hub network namespace, one
worker in each worker-host namespace, reaching Redis and PostgreSQL only over its own veth
link. benchmarks/load.py's websocket clients, run in the hub, offer the same drawings/s for
the same seconds. It prints load.py's report for each run, the answers each host gave (the
database trigger records the address every answer came from), and last a table of all runs.

Every "host" here shares this machine's cores. On 2 cores, more worker hosts only add
processes, connections and claims competing for the same two cores, so the figures show the
overhead of spreading workers out, not a gain; real hosts each bring their own cores.

Needs root (network namespaces) and PostgreSQL's server binaries, as the multi-host test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from benchmarks import load
from benchmarks.latency import percentile
from tests import hosts
from training import samples


@dataclass
class Run:
    hosts: int
    setup_s: float
    answered_per_s: float  # load.py's figure: answers within its grace after the last send, per second sent
    served_per_s: float  # answers the database stored while the clients sent, per second
    latencies: list[float]
    by_host: dict[str, int]

    def latency_ms(self, share: float) -> float:
        return percentile(self.latencies, share) * 1000 if self.latencies else float("nan")


@dataclass
class Offered:
    tally: load.Tally
    cores: dict[str, float]  # CPU used while sending, by role
    start: datetime
    end: datetime


async def offer(url: str, clients: int, rate: float, seconds: float, processes: dict) -> Offered:
    """load.py's clients offering `rate` drawings/s for `seconds`, then waiting its grace for the last answers."""
    bodies, _ = samples.page_bodies(40, "strokes")
    tally = load.Tally()
    before, start = load.cpu_seconds(processes), datetime.now(UTC)
    until = time.perf_counter() + seconds
    sending = asyncio.gather(*(load.ws_client(url, bodies, clients / rate, until, tally) for _ in range(clients)))
    await asyncio.sleep(seconds)
    # Read when the sending stops, as load.py does: the wait for the last answers would dilute it.
    after, end = load.cpu_seconds(processes), datetime.now(UTC)
    await sending
    return Offered(tally, {name: (after.get(name, used) - used) / seconds for name, used in before.items()}, start, end)


def site_processes(site: hosts.Site) -> dict[psutil.Process, str]:
    """load.py's roles for this site's processes and this one: not another stack that may run here."""
    ours = {os.getpid()}
    for child in site.children:
        with contextlib.suppress(psutil.Error):
            ours |= {child.pid} | {p.pid for p in psutil.Process(child.pid).children(recursive=True)}
    return {process: role for process, role in load.service_processes().items() if process.pid in ours}


# The sweeper as shipped (settings.py's defaults), not the test's: it re-sends every drawing
# queued longer than 5 s each second, which under a backlog floods the queue with repeats.
SWEEPER = {"VISIBILITY_TIMEOUT": "60", "SWEEP_INTERVAL": "10", "STALE_AFTER": "30"}


def build(count: int, logs: Path) -> hosts.Site:
    """The hub and `count` worker hosts, every worker's model loaded."""
    site = hosts.Site(logs, settings=SWEEPER)
    try:
        started = time.monotonic()
        site.start_hub()
        for number in range(1, count + 1):
            site.add_worker(number)
        site.wait_until_ready()
        site.setup_s = round(time.monotonic() - started, 1)
    except BaseException:
        site.close()
        raise
    return site


def measure(count: int, args: argparse.Namespace) -> Run:
    print(f"\n== workers on {count} host(s): {args.rate:g} drawings/s offered by {args.clients} clients ==", flush=True)
    with tempfile.TemporaryDirectory(prefix="digits-multihost-") as logs:
        site = build(count, Path(logs))
        finished = False
        try:
            url = f"ws://127.0.0.1:{hosts.WEB_PORT}/ws/recognize/"
            sent = offer(url, args.clients, args.rate, args.seconds, site_processes(site))
            offered = hosts.in_namespace(site.hub, asyncio.run, sent)
            run = tally_run(count, site, offered, args)
            finished = True
        finally:
            site.close(show_logs=not finished)  # the processes' logs only when something failed
    return run


def tally_run(count: int, site: hosts.Site, offered: Offered, args: argparse.Namespace) -> Run:
    """load.py's report, then what the database saw: who answered, and how fast while the load lasted."""
    answered_per_s = load.report("ws", args.clients, args.seconds, offered.tally, offered.cores)
    audit = hosts.Audit(site.postgres)
    try:
        by_host = {f"host{n}": audit.answers(hosts.address(n)) for n in range(1, count + 1)}
        served = audit.answered_between(offered.start, offered.end) / (offered.end - offered.start).total_seconds()
    finally:
        audit.conn.close()
    print(f"  answered while sending: {served:.1f}/s", flush=True)
    print("  answers by host: " + ", ".join(f"{host} {n}" for host, n in by_host.items()), flush=True)
    return Run(count, site.setup_s, answered_per_s, served, sorted(offered.tally.latencies), by_host)


def table(runs: list[Run], args: argparse.Namespace) -> None:
    offered = f"{args.rate:g} drawings/s offered for {args.seconds:g} s by {args.clients} websocket clients"
    print(f"\n{offered}, {os.cpu_count()} cores")
    print("| worker hosts | answered/s | answered/s while sending | p50 ms | p99 ms | answers by host | setup s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for run in runs:
        rates = f"{run.answered_per_s:.1f} | {run.served_per_s:.1f}"
        latency = f"{run.latency_ms(0.5):.1f} | {run.latency_ms(0.99):.1f}"
        shares = " / ".join(str(n) for n in run.by_host.values())
        print(f"| {run.hosts} | {rates} | {latency} | {shares} | {run.setup_s:g} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 2, 3], help="worker-host counts to measure")
    parser.add_argument("--clients", type=int, default=60)
    parser.add_argument("--rate", type=float, default=300, help="drawings per second, all clients together")
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    if reason := hosts.unavailable():
        sys.exit(f"benchmarks.multihost: {reason}")
    # SIGTERM as an exception, so that `finally` removes the namespaces, processes and cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    table([measure(count, args) for count in args.hosts], args)


if __name__ == "__main__":
    main()
