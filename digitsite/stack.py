"""`make run`: the whole service on one machine, stopped cleanly by Ctrl-C, SIGTERM or a hangup (terminal closed).

python -m digitsite.stack            Redis (embedded unless REDIS_URL is set), WORKERS workers,
                                     the sweeper (Celery beat) and the web server on HOST:PORT
                                     (WEB_PROCESSES processes behind the one port)
python -m digitsite.stack web        only the web server   } each with the options used
python -m digitsite.stack worker     only one worker       } everywhere (tests, compose)
python -m digitsite.stack beat       only the sweeper      }
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from digitsite.env import envint
from digitsite.redis_server import EmbeddedRedis

BASE_DIR = Path(__file__).resolve().parent.parent


def worker_command(name: str = "worker@%h") -> list[str]:
    """One worker: a parent taking messages and a child process holding the model."""
    return [sys.executable, "-m", "celery", "-A", "digitsite", "worker", "--loglevel=INFO", "-n", name]


def web_command(host: str, port: int, processes: int = 1) -> list[str]:
    """The web server; `processes` > 1 runs that many behind the one port (see shared_metrics)."""
    return [
        *(sys.executable, "-m", "uvicorn", "digitsite.asgi:application"),
        *("--host", host, "--port", str(port), "--lifespan", "off", "--no-access-log"),
        # One web process is one interpreter lock: at about 650 stroke drawings a second it holds
        # a core, where the worker, Redis and the clients leave part of a second one idle.
        *(("--workers", str(processes)) if processes > 1 else ()),
        # Frames up to twice the drawing limit reach the consumer, which answers with an
        # error frame; bigger ones are cut off by the server before they are buffered.
        *("--ws-max-size", str(2 * settings_value("DATA_UPLOAD_MAX_MEMORY_SIZE"))),
        # Drawings are base64 PNGs, already deflated: compressing frames again costs both
        # ends CPU for a few percent of bytes.
        *("--ws-per-message-deflate", "false"),
        *proxy_options(settings_value("TRUSTED_PROXIES")),
    ]


def shared_metrics(processes: int, directory: Path) -> dict[str, str]:
    """The environment several web processes behind one port need for /metrics: each writes its
    counters to files in `directory` (emptied now) and a scrape, answered by any one of them, sums
    every process's (prometheus_client's multiprocess mode; recognizer.metrics.scraped). One process: none."""
    if processes < 2:
        return {}
    shutil.rmtree(directory, ignore_errors=True)  # counts of an earlier run would be added in
    directory.mkdir(parents=True)
    return {"PROMETHEUS_MULTIPROC_DIR": str(directory)}


def proxy_options(trusted: list[str]) -> list[str]:
    """Who may say, in X-Forwarded-For, which client a connection is for.

    Only the proxies in TRUSTED_PROXIES: then uvicorn sets the client address (REMOTE_ADDR,
    scope["client"], on which rate limits count) to the first address in the header that is
    not a trusted proxy. Without them the header is ignored: uvicorn's own default would trust
    127.0.0.1 (or FORWARDED_ALLOW_IPS), and anything on the machine could pick any address.
    """
    if not trusted:
        return ["--no-proxy-headers"]
    return ["--proxy-headers", "--forwarded-allow-ips", ",".join(trusted)]


def beat_command() -> list[str]:
    """Celery beat, which runs the sweeper that re-queues drawings left queued."""
    schedule = BASE_DIR / ".run" / "celerybeat-schedule"
    schedule.parent.mkdir(exist_ok=True)
    return [sys.executable, "-m", "celery", "-A", "digitsite", "beat", "--loglevel=INFO", "--schedule", str(schedule)]


def settings_value(name: str):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digitsite.settings")
    from django.conf import settings

    return getattr(settings, name)


def wait_for_port(host: str, port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the web server did not start on {host}:{port}")


def wait_for_workers(count: int, processes: list[subprocess.Popen], broker_url: str = "", timeout: float = 120) -> None:
    """Until `count` workers on the broker answer a ping (each has loaded its model by then)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digitsite.settings")
    from celery import Celery

    from digitsite.celery import app as default_app  # reads REDIS_URL, so only once it is set

    app = Celery(broker=broker_url) if broker_url else default_app
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            raise RuntimeError("a worker exited while starting")
        if len(app.control.ping(timeout=0.5)) >= count:
            return
    raise RuntimeError(f"{count} worker(s) did not answer within {timeout:.0f} s")


def redacted(url: str) -> str:
    """The URL with its password, if any, shown as `***`: fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def say(line: str) -> None:
    """Print a line; a terminal that hung up cannot be written to, and the stack must still be stopped."""
    with contextlib.suppress(OSError):
        print(line, flush=True)


def stop(processes: list[subprocess.Popen]) -> None:
    """Web first (no new drawings), then workers (they finish the one in hand)."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


class _StopRequested(Exception):
    """A stop signal while the stack starts: the waits for the web server and the workers (up to
    minutes, for a worker whose broker does not answer) are cut short, as Ctrl-C is expected to."""


def main() -> int:
    host = os.environ.get("HOST", "127.0.0.1")
    port = envint("PORT", 8000)
    workers = envint("WORKERS", 1)
    web_processes = envint("WEB_PROCESSES", 1)
    redis = None
    if not os.environ.get("REDIS_URL"):
        redis = EmbeddedRedis(BASE_DIR / ".run")
        os.environ["REDIS_URL"] = redis.url  # the children inherit it
    print(f"redis: {redacted(os.environ['REDIS_URL'])}{' (embedded)' if redis else ''}", flush=True)
    # Children get their own session so that Ctrl-C reaches only this process, which then
    # stops them in order.
    web = subprocess.Popen(
        web_command(host, port, web_processes),
        cwd=BASE_DIR,
        env={**os.environ, **shared_metrics(web_processes, BASE_DIR / ".run" / "metrics")},
        start_new_session=True,
    )
    commands = [worker_command(f"worker{i + 1}@%h") for i in range(workers)] + [beat_command()]
    processes = [web] + [subprocess.Popen(command, cwd=BASE_DIR, start_new_session=True) for command in commands]
    names = ["web"] + [f"worker{i + 1}" for i in range(workers)] + ["beat"]
    # The embedded Redis is watched with the others: without it no drawing is answered, so its
    # death stops the stack (exit status 1) rather than leaving a site that only queues.
    watched = list(zip(names, processes, strict=True)) + ([("redis-server", redis.process)] if redis else [])
    stopping, starting = False, True

    def request_stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True
        if starting:
            raise _StopRequested

    # SIGHUP: the terminal closed or the SSH connection dropped. The children, in their own
    # sessions, never see it: left running, they would hold the port and the queue as orphans.
    # Unless it is ignored: `nohup make run` asks to outlive the terminal.
    hangup = () if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN else (signal.SIGHUP,)
    try:
        for signum in (signal.SIGINT, signal.SIGTERM, *hangup):
            signal.signal(signum, request_stop)
        wait_for_port(host, port, web)
        wait_for_workers(workers, processes[1:])
        starting = False
        # Another server on PORT answers wait_for_port while ours has failed to bind: never say
        # "running" then (the loop below reports the web server's exit and stops).
        if web.poll() is None:
            print(
                f"\n  digits is running at http://{host}:{port}/  ({workers} worker(s); Ctrl-C stops it)\n", flush=True
            )
        while not stopping and all(p.poll() is None for _, p in watched):
            time.sleep(0.2)
    except _StopRequested:
        pass
    except RuntimeError as exc:  # a child that did not start: it said why (a worker without its model)
        say(str(exc))
        return 1
    finally:
        starting = False  # a second signal while the children stop must not cut that short
        for name, process in watched:
            if process.poll() is not None and not stopping:
                say(f"{name} exited with {process.returncode}")
        say("stopping...")
        stop(processes)
        if redis:
            redis.stop()
    return 0 if stopping else 1  # a child that died on its own is a failure


ROLES = ("web", "worker", "beat")


def run_one(role: str) -> None:
    """Become one process of the service (for running them apart, e.g. in compose)."""
    host, port = os.environ.get("HOST", "127.0.0.1"), envint("PORT", 8000)
    commands = {
        "web": lambda: web_command(host, port, envint("WEB_PROCESSES", 1)),
        "worker": lambda: worker_command(os.environ.get("WORKER_NAME", "worker@%h")),
        "beat": beat_command,
    }
    command = commands[role]()
    if role == "web":
        os.environ.update(shared_metrics(envint("WEB_PROCESSES", 1), Path(tempfile.mkdtemp(prefix="digits-metrics-"))))
    os.chdir(BASE_DIR)
    os.execv(command[0], command)


def command_line(args: list[str]) -> int:
    """The whole stack with no argument, one role with its name; else the usage (--help: exit 0, else 2)."""
    if not args:
        return main()
    if len(args) == 1 and args[0] in ROLES:
        run_one(args[0])  # does not return: this process becomes the role's
    usage = f"usage: python -m digitsite.stack [{' | '.join(ROLES)}]\n\n{__doc__}"
    if args[0] in ("-h", "--help"):
        print(usage)
        return 0
    print(f"{usage}\nnot a role: {' '.join(args)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(command_line(sys.argv[1:]))
