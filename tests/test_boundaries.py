"""What runs where: the web process stays free of TensorFlow; the deployment file is valid."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
WEB_PROCESS = """
import sys
import django
django.setup()
from django.test import Client
import digitsite.asgi, digitsite.urls, recognizer.admin, recognizer.api, recognizer.consumers, recognizer.services
assert Client(HTTP_HOST="localhost").get("/").status_code == 200
assert Client(HTTP_HOST="localhost").get("/api/openapi.json").status_code == 200
heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras", "worker.tasks"))
print(heavy)
sys.exit(1 if heavy else 0)
"""


def test_it_keeps_tensorflow_out_of_the_web_process():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run([sys.executable, "-c", WEB_PROCESS], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="Debian package docker-compose is not installed")
def test_it_ships_a_valid_docker_compose_file():
    env = {**os.environ, "SECRET_KEY": "only-for-the-check"}  # the file requires one
    command = ["docker-compose", "config", "-q"]
    result = subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
