"""Reading settings from the environment, strictly, for settings.py and the launcher (stack.py).

A value that cannot be read stops the process at start-up with the variable's name, instead of
quietly meaning the default (`HTTPS=ture` must not serve a site without secure cookies).
An empty or unset variable means the default, so `NAME=` in a .env file is harmless.
"""

from __future__ import annotations

import os
from typing import overload

from django.core.exceptions import ImproperlyConfigured

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def envbool(name: str, default: bool) -> bool:
    """true/false, 1/0, yes/no or on/off, in any case; anything else is a configuration error."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={os.environ[name]!r} is not a boolean: use true/false, 1/0, yes/no or on/off")


@overload
def envint(name: str, default: int) -> int: ...
@overload
def envint(name: str, default: None) -> int | None: ...
def envint(name: str, default: int | None) -> int | None:
    """A whole number; a default of None tells "unset" apart from any number."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={os.environ[name]!r} is not an integer") from None


def envlist(name: str, default: str) -> list[str]:
    """A comma-separated list; blank items are dropped."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]
