"""Machines for the multi-host test: Linux network namespaces joined by veth links, and a private PostgreSQL.

Everything lives inside namespaces made here (addresses 10.77.N.x, never the machine's own
networks) and in a temporary directory; `close` removes it all, whatever state it is in.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import psycopg

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
                    conn.execute(f"CREATE DATABASE {PG_DATABASE}")
                    # A worker whose link is cut in the middle of storing a batch leaves its
                    # transaction open, holding the rows' locks; the server ends it, so that
                    # the other workers' claims on those rows do not wait for TCP's timeouts.
                    conn.execute(f"ALTER DATABASE {PG_DATABASE} SET idle_in_transaction_session_timeout = '5s'")
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
