"""What runs where: the web process stays free of TensorFlow; the deployment file is valid."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


# What the compose file requires, for these checks only (it has no defaults for them).
COMPOSE_SECRETS = {
    "SECRET_KEY": "only-for-the-check",
    "REDIS_PASSWORD": "redis-check",
    "POSTGRES_USER": "digits",
    "POSTGRES_PASSWORD": "postgres-check",
    "POSTGRES_DB": "digits",
    "FLOWER_BASIC_AUTH": "admin:flower-check",
}
needs_compose = pytest.mark.skipif(
    not shutil.which("docker-compose"), reason="Debian package docker-compose is not installed"
)


def compose_config(tmp_path, without: str = "") -> subprocess.CompletedProcess:
    """`docker-compose config` with the secrets above (less one), blind to any .env of a developer's."""
    env = {name: value for name, value in os.environ.items() if name not in COMPOSE_SECRETS}
    env.update({name: value for name, value in COMPOSE_SECRETS.items() if name != without})
    (tmp_path / "empty.env").write_text("")
    command = ["docker-compose", "--env-file", str(tmp_path / "empty.env"), "config"]
    return subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True)


@needs_compose
def test_it_ships_a_valid_docker_compose_file(tmp_path):
    result = compose_config(tmp_path)
    assert result.returncode == 0, result.stderr


@needs_compose
@pytest.mark.parametrize("name", COMPOSE_SECRETS)
def test_the_compose_file_has_no_default_secrets(tmp_path, name):
    result = compose_config(tmp_path, without=name)
    assert result.returncode != 0 and f"set {name}" in result.stderr


@needs_compose
def test_the_compose_file_is_safe_to_expose(tmp_path):
    services = yaml.safe_load(compose_config(tmp_path).stdout)["services"]
    # Flower lists task arguments: this machine only, behind basic auth.
    assert services["flower"]["ports"] == ["127.0.0.1:5555:5555/tcp"]
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == "admin:flower-check"
    assert not {name for name, service in services.items() if service.get("ports")} - {"web", "flower"}
    # Redis and PostgreSQL want the passwords, and the processes use them.
    redis = services["redis"]
    assert "--requirepass" in " ".join(redis["entrypoint"]) and redis["environment"]["REDIS_PASSWORD"] == "redis-check"
    assert "--maxmemory" in redis["command"]  # the server's own flags stay in `command`
    app = services["web"]["environment"]
    assert app["REDIS_URL"] == "redis://:redis-check@redis:6379/0"
    assert app["DATABASE_URL"] == "postgres://digits:postgres-check@postgres:5432/digits"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "postgres-check"
    # Migrations run once, before anything that uses the database.
    assert services["migrate"]["command"] == "python manage.py migrate --noinput"
    assert services["migrate"]["restart"] == "no"
    assert "migrate" not in services["web"]["command"]
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


# What .env.example lists that the compose file does not pass on: the debug pages (never in these
# containers), what compose builds or sets itself, what `make run` and training alone read, and
# what only compose reads.
NOT_PASSED = {
    *("DEBUG", "DATABASE_URL", "REDIS_URL", "TASK_EVENTS", "HOST", "PORT", "WORKERS", "WORKER_NAME", "MNIST_PATH"),
    *("REDIS_PASSWORD", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "FLOWER_BASIC_AUTH"),
}


@needs_compose
def test_the_compose_file_passes_every_setting_of_env_example_to_the_processes(tmp_path):
    listed = {line.split("=")[0] for line in (BASE_DIR / ".env.example").read_text().splitlines() if "=" in line}
    listed = {name for name in listed if name.isupper() and not name.startswith("#")}
    services = yaml.safe_load(compose_config(tmp_path).stdout)["services"]
    for name in ("web", "worker", "beat"):
        assert listed - NOT_PASSED <= set(services[name]["environment"]), name


def test_the_image_leaves_env_files_out():
    ignored = (BASE_DIR / ".dockerignore").read_text().splitlines()
    assert {".env", ".env.*", "!.env.example"} <= set(ignored)
