"""Settings from the environment: strict parsers, and every variable documented in .env.example."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from digitsite.env import envbool, envint, envlist

BASE_DIR = Path(__file__).resolve().parent.parent
READERS = ("digitsite/settings.py", "digitsite/stack.py")
PARSERS = {"envbool", "envint", "envlist"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("On", True),
        ("1", True),
        ("false", False),
        ("False", False),
        ("no", False),
        ("OFF", False),
        ("0", False),
    ],
)
def test_envbool_reads_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_FLAG", raw)
    assert envbool("SOME_FLAG", not expected) is expected


@pytest.mark.parametrize("raw", ["", "  "])
def test_envbool_takes_empty_as_the_default(monkeypatch, raw):
    monkeypatch.setenv("SOME_FLAG", raw)
    assert envbool("SOME_FLAG", True) is True
    assert envbool("SOME_FLAG", False) is False


def test_envbool_takes_unset_as_the_default(monkeypatch):
    monkeypatch.delenv("SOME_FLAG", raising=False)
    assert envbool("SOME_FLAG", True) is True
    assert envbool("SOME_FLAG", False) is False


@pytest.mark.parametrize("raw", ["ture", "2", "y", "enabled", "false!"])
def test_envbool_refuses_anything_else_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("SOME_FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match=rf"SOME_FLAG={raw!r}"):
        envbool("SOME_FLAG", False)


@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("42", 42), (" 7 ", 7), ("-3", -3)])
def test_envint_reads_integers(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_NUMBER", raw)
    assert envint("SOME_NUMBER", 5) == expected


def test_envint_takes_empty_or_unset_as_the_default(monkeypatch):
    monkeypatch.setenv("SOME_NUMBER", "")
    assert envint("SOME_NUMBER", 5) == 5
    assert envint("SOME_NUMBER", None) is None
    monkeypatch.delenv("SOME_NUMBER")
    assert envint("SOME_NUMBER", 5) == 5
    assert envint("SOME_NUMBER", None) is None


@pytest.mark.parametrize("raw", ["ten", "1.5", "8000x", "0x10"])
def test_envint_refuses_non_integers_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("SOME_NUMBER", raw)
    with pytest.raises(ImproperlyConfigured, match=rf"SOME_NUMBER={raw!r} is not an integer"):
        envint("SOME_NUMBER", 5)


def test_envlist_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("SOME_LIST", " a.example, b.example ,,")
    assert envlist("SOME_LIST", "x") == ["a.example", "b.example"]
    monkeypatch.delenv("SOME_LIST")
    assert envlist("SOME_LIST", "x,y") == ["x", "y"]


def is_environ(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and getattr(node.value, "id", None) == "os"


def variables_read(path: Path) -> set[str]:
    """Each environment variable `path` reads; a name that is not a literal fails the scan."""
    names: set[str] = set()

    def add(node: ast.expr) -> None:
        assert isinstance(node, ast.Constant) and isinstance(node.value, str), (
            f"{path.name}:{node.lineno}: read an environment variable by a literal name, so it can be checked"
        )
        names.add(node.value)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.ctx, ast.Load):
            add(node.slice)  # os.environ["X"]
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "get" and is_environ(func.value):
                add(node.args[0])  # os.environ.get("X")
            elif isinstance(func, ast.Name) and func.id in PARSERS:
                add(node.args[0])  # envbool("X"), envint("X"), envlist("X")
            elif (
                isinstance(func, ast.Attribute)
                and func.attr == "config"
                and getattr(func.value, "id", "") == "dj_database_url"
            ):
                raise AssertionError("dj_database_url.config() reads DATABASE_URL unseen: read it with os.environ.get")
    return names


def test_every_variable_read_is_in_env_example():
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (BASE_DIR / ".env.example").read_text(), re.M))
    read = set().union(*(variables_read(BASE_DIR / path) for path in READERS))
    # The scan itself works: these are read through each kind of call it looks for.
    assert {"HTTPS", "DEBUG", "ALLOWED_HOSTS", "PORT", "WORKER_NAME", "REDIS_URL", "DATABASE_URL"} <= read
    assert {"MODEL_PATH", "DB_CONN_MAX_AGE", "LOG_LEVEL", "HOST", "WORKERS"} <= read
    assert not read - documented, f"add to .env.example: {sorted(read - documented)}"


def test_env_example_comments_every_variable():
    for line in (BASE_DIR / ".env.example").read_text().splitlines():
        if re.match(r"[A-Z][A-Z0-9_]*=", line):
            assert re.search(r"\s#\s*\S", line), f"no comment: {line}"


def test_env_example_names_the_shipped_model_as_the_default():
    assert re.search(
        r"^MODEL_PATH=.*#.*default: worker/artifacts/model\.keras", (BASE_DIR / ".env.example").read_text(), re.M
    )


@pytest.mark.parametrize(
    ("key", "said"),
    [(None, "SECRET_KEY must be set where HTTPS=true"), ("REPLACE_ME", "placeholder or too weak"),
     ("x" * 60, "placeholder or too weak"), ("REPLACE_ME" + "abcdefgh" * 6, "placeholder or too weak")],
)  # fmt: skip
def test_production_refuses_to_start_without_a_real_secret_key(key, said):
    # A key made on the spot differs between containers; the example overlay's placeholder signs for anyone.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "digitsite.settings", "HTTPS": "true"}
    env.pop("SECRET_KEY", None)
    env |= {"SECRET_KEY": key} if key else {}
    command = [sys.executable, "-c", "import django; django.setup()"]
    result = subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr and said in result.stderr


def test_a_misspelt_boolean_stops_django_from_starting():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "digitsite.settings", "HTTPS": "ture"}
    command = [sys.executable, "-c", "import django; django.setup()"]
    result = subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "HTTPS='ture' is not a boolean" in result.stderr
