"""`make run`'s launcher (digitsite.stack.main), mostly with its children faked: what it prints and when it stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import psutil
import pytest

from digitsite import stack
from digitsite.redis_server import EmbeddedRedis, free_port


class FakeProcess:
    """A child that runs for `lives` polls (None: for ever), then has exited with `code`."""

    def __init__(self, args: list[str], lives: int | None = None, code: int = -9) -> None:
        self.args, self.lives, self.code, self.returncode = args, lives, code, None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        if self.returncode is None and self.lives is not None:
            self.lives -= 1
            if self.lives < 0:
                self.returncode = self.code
        return self.returncode

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)
        self.returncode = -signum

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode

    def kill(self) -> None:
        self.returncode = -9


class FakeRedis:
    def __init__(self, process: FakeProcess) -> None:
        self.process = process
        self.url = "redis://127.0.0.1:6399/0"
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def launched(monkeypatch):
    """main() with every child a FakeProcess; `web_lives` polls before the web server exits by itself."""
    started: list[FakeProcess] = []

    def popen(args, **kwargs):
        process = FakeProcess(args, lives=launched.web_lives if not started else None)
        started.append(process)
        return process

    launched.web_lives = None
    monkeypatch.setattr(stack.subprocess, "Popen", popen)
    monkeypatch.setattr(stack, "wait_for_port", lambda *args, **kwargs: None)
    monkeypatch.setattr(stack, "wait_for_workers", lambda *args, **kwargs: None)
    monkeypatch.setattr(stack.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(stack.signal, "signal", lambda *args: None)  # leave pytest's own handlers alone
    monkeypatch.setenv("WORKERS", "2")
    monkeypatch.setenv("WEB_PROCESSES", "1")
    launched.started = started
    return launched


def test_a_redis_password_is_not_printed(launched, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", "redis://:s3cret-pass@redis.example.internal:6379/0")
    launched.web_lives = 1  # the stack stops at once
    assert stack.main() == 1
    out = capsys.readouterr().out
    assert "s3cret-pass" not in out
    assert "redis: redis://:***@redis.example.internal:6379/0" in out


def test_urls_without_a_password_are_shown_as_they_are():
    assert stack.redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert stack.redacted("redis://user:pw@host:1/2") == "redis://user:***@host:1/2"


def test_the_embedded_redis_dying_stops_the_stack(launched, monkeypatch, capsys):
    """Without Redis nothing is answered: the launcher must not go on as if all were well."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    redis = FakeRedis(FakeProcess(["redis-server"], lives=3))
    monkeypatch.setattr(stack, "EmbeddedRedis", lambda directory: redis)
    launched.web_lives = 10_000  # before the fix the loop ran until the web server ended on its own
    assert stack.main() == 1
    out = capsys.readouterr().out
    assert "redis-server exited with -9" in out
    assert launched.started[0].returncode is not None and launched.started[0].lives > 0  # stopped, not ended
    assert redis.stopped


def test_a_dead_child_is_named(launched, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/0")
    launched.web_lives = 2
    assert stack.main() == 1
    assert "web exited with -9" in capsys.readouterr().out


def test_it_does_not_say_running_when_the_web_server_could_not_start(launched, monkeypatch, capsys):
    """Another server already on PORT answers the port check while uvicorn has exited (address in use)."""
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/0")
    launched.web_lives = 0  # exited before the port was checked
    assert stack.main() == 1
    out = capsys.readouterr().out
    assert "is running at" not in out
    assert "web exited with -9" in out


@pytest.mark.parametrize(("hangup", "taken"), [(signal.SIG_DFL, True), (signal.SIG_IGN, False)])
def test_a_hangup_is_taken_over_unless_nohup_ignores_it(launched, monkeypatch, hangup, taken):
    # `nohup make run &` stopped when the terminal closed: the launcher took over the SIGHUP that
    # nohup had set to be ignored.
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/0")
    handled = []
    monkeypatch.setattr(stack.signal, "signal", lambda signum, handler: handled.append(signum))
    monkeypatch.setattr(stack.signal, "getsignal", lambda signum: hangup)
    launched.web_lives = 1
    stack.main()
    assert (signal.SIGHUP in handled) is taken and signal.SIGINT in handled


def test_a_worker_that_could_not_start_ends_the_stack_with_its_reason_not_a_traceback(launched, monkeypatch, capsys):
    # A worker without its model exits at start, saying why; the launcher then ended in a traceback.
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/0")

    def exited(*args, **kwargs):
        raise RuntimeError("a worker exited while starting")

    monkeypatch.setattr(stack, "wait_for_workers", exited)
    assert stack.main() == 1
    out = capsys.readouterr().out
    assert "a worker exited while starting" in out and "stopping..." in out
    assert all(process.returncode is not None for process in launched.started)  # the others stopped


def test_a_stop_signal_while_starting_cuts_the_start_short(launched, monkeypatch, capsys):
    # Ctrl-C while the workers loaded took effect only once they answered (up to two minutes for a
    # worker whose broker never does), and the stack said "running" first.
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/0")
    handlers = {}
    monkeypatch.setattr(stack.signal, "signal", lambda signum, handler: handlers.setdefault(signum, handler))
    went_on = []

    def waiting(*args, **kwargs):
        handlers[signal.SIGINT](signal.SIGINT, None)
        went_on.append(True)

    monkeypatch.setattr(stack, "wait_for_workers", waiting)
    assert stack.main() == 0
    out = capsys.readouterr().out
    assert not went_on and "digits is running" not in out and "stopping..." in out
    assert all(process.returncode is not None for process in launched.started)
    handlers[signal.SIGINT](signal.SIGINT, None)  # a second one while stopping only asks again


def test_the_embedded_redis_has_a_session_of_its_own(tmp_path):
    # Ctrl-C signals the terminal's whole process group: Redis went down at once, under the workers
    # still finishing their drawings, where the launcher stops it last.
    redis = EmbeddedRedis(tmp_path, port=free_port())
    try:
        assert os.getsid(redis.process.pid) == redis.process.pid != os.getsid(0)
    finally:
        redis.stop()


@pytest.mark.django_db(transaction=True)
def test_a_hangup_stops_the_whole_stack_even_when_the_terminal_is_gone(processes):
    # Closing the terminal (or an SSH drop) killed the launcher alone: the web server, the worker,
    # beat and Redis, each in its own session, kept serving as orphans and held the port.
    port = free_port()
    env = {**processes.env, "PORT": str(port), "WORKERS": "1", "WEB_PROCESSES": "1"}
    env.pop("REDIS_URL")  # its own embedded Redis, which it must stop too
    command = [sys.executable, "-m", "digitsite.stack"]
    # As from a terminal: a hangup not ignored (a test run under nohup passes its ignore down).
    launcher = subprocess.Popen(command, cwd=stack.BASE_DIR, env=env, stdout=subprocess.PIPE, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))  # fmt: skip
    children: list[psutil.Process] = []
    try:
        while b"digits is running" not in (line := launcher.stdout.readline()):
            assert line, "the stack did not start"
        children = psutil.Process(launcher.pid).children(recursive=True)
        assert len(children) >= 4  # web, worker (and its pool child), beat, redis-server
        launcher.stdout.close()  # the terminal is gone: what the launcher prints now fails
        os.killpg(launcher.pid, signal.SIGHUP)  # what the terminal sends its session's foreground group
        launcher.wait(60)
        alive = psutil.wait_procs(children, timeout=30)[1]
        assert not alive, [p.cmdline() for p in alive]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free for the next `make run`
    finally:  # before the fix, the orphans
        for process in children:
            if process.is_running():
                process.kill()
        if launcher.poll() is None:
            launcher.kill()


@pytest.mark.parametrize("args", [["wrker"], ["worker", "web"], ["-x"]])
def test_a_mistyped_role_gets_the_usage_not_a_traceback(args):
    # `python -m digitsite.stack wrker` ended in a KeyError traceback.
    result = subprocess.run([sys.executable, "-m", "digitsite.stack", *args], cwd=stack.BASE_DIR,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("usage: python -m digitsite.stack [web | worker | beat]")
    assert f"not a role: {' '.join(args)}" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_the_usage(flag):
    result = subprocess.run([sys.executable, "-m", "digitsite.stack", flag], cwd=stack.BASE_DIR,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: python -m digitsite.stack [web | worker | beat]")
    assert "python -m digitsite.stack worker     only one worker" in result.stdout
