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
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import psycopg
import pytest
import requests
import websockets
from django.conf import settings

from tests import crafted, hosts
from tests.hosts import PG_DATABASE, PG_USER, WEB_PORT, Audit, Network, Postgres, Site, address
from training import samples

UNAVAILABLE = hosts.unavailable()
REQUIRED = os.environ.get("MULTIHOST") == "required"
pytestmark = pytest.mark.skipif(bool(UNAVAILABLE) and not REQUIRED, reason=f"multi-host test: {UNAVAILABLE}")
WINDOW = 4  # drawings a websocket client sends before it waits for the first to be acknowledged


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Poll `condition` until it holds; the seconds it took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.2)
    return time.monotonic() - start


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


def test_the_server_ends_the_session_of_a_worker_cut_off_in_the_middle_of_a_write():
    """The service's session options (settings.POSTGRES_SESSION_OPTIONS) end, within seconds, a
    session whose client vanished halfway through a pipelined write: the backend waits for the rest
    of the pipeline, not idle in a transaction, so without keepalives it holds its locks for hours."""
    if UNAVAILABLE:
        pytest.fail(f"MULTIHOST=required, but {UNAVAILABLE}")
    network, postgres = Network(), None
    try:
        hub, spoke = network.namespace("hub"), network.namespace("w1")
        hub_address = network.link(hub, spoke, 1)
        postgres = Postgres(hub, trusted="10.77.0.0/16")
        admin = postgres.connect()
        admin.execute("CREATE TABLE drawing (id int PRIMARY KEY); INSERT INTO drawing VALUES (1)")

        def write_halfway() -> psycopg.Connection:
            options = settings.POSTGRES_SESSION_OPTIONS
            conn = psycopg.connect(host=hub_address, user=PG_USER, dbname=PG_DATABASE, options=options, autocommit=True)
            crafted.write_left_halfway(conn, b"UPDATE drawing SET id = 1 WHERE id = 1")
            return conn

        client = hosts.in_namespace(spoke, write_halfway)
        backend = client.pgconn.backend_pid
        wait_until(lambda: admin.execute(crafted.HOLDS_A_WRITE_LOCK, (backend,)).fetchone()[0], 10, "its lock taken")
        network.cut(spoke)
        alive = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
        ended = wait_until(lambda: not admin.execute(alive, (backend,)).fetchone()[0], 30, "the session ends")
        admin.execute("SET lock_timeout = '1s'")
        admin.execute("UPDATE drawing SET id = 1 WHERE id = 1")  # its lock is gone with it
        print(f"\nthe cut-off session ended after {ended:.1f} s")
        admin.close()
    finally:
        if postgres:
            postgres.close()
        network.close()
