"""`make run`'s launcher (digitsite.stack.main) with its children faked: what it prints and when it stops."""

from __future__ import annotations

import pytest

from digitsite import stack


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
