"""Imports run one way (DESIGN.md): the web side never reaches the worker, training or TensorFlow."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
WEB_PACKAGES = ("recognizer", "digitsite")
FORBIDDEN = ("worker", "training", "tensorflow", "keras")


def modules(package: str) -> list[str]:
    return sorted(
        ".".join(path.relative_to(BASE_DIR).with_suffix("").parts).removesuffix(".__init__")
        for path in (BASE_DIR / package).rglob("*.py")
    )


def imported_names(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` names anywhere in the file, top level or not."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", WEB_PACKAGES)
def test_no_web_module_names_the_worker_or_training(package):
    offenders = {
        f"{path.relative_to(BASE_DIR)}: {name}"
        for path in (BASE_DIR / package).rglob("*.py")
        for name in imported_names(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert not offenders


def test_importing_every_web_module_loads_no_worker_training_or_tensorflow_module():
    # A fresh interpreter: this one has long since imported everything.
    script = f"""
import importlib, json, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "digitsite.settings"
import django
django.setup()
for name in {modules("recognizer") + modules("digitsite")!r}:
    importlib.import_module(name)
# The training app is installed for its management commands: its package and AppConfig only.
allowed = {{"training", "training.apps"}}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r} and m not in allowed)))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
