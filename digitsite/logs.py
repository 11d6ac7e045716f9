"""Logging what clients (and staff) get wrong, and a broker that went away, as one line each."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from kombu.exceptions import OperationalError

# What uvicorn logs at ERROR after every websocket handshake the application refuses with a
# response of its own (a foreign Origin: 403, an unknown path: 404), as if none had been sent.
REFUSED_HANDSHAKE = "ASGI callable returned without completing handshake."


class ClientMistakes(logging.Filter):
    """Django logs a request refused as suspicious (a Host not allowed, a form of too many fields:
    400s) at ERROR with its traceback, and every 503 (load shed, by design) at ERROR: a client could
    fill the log with them, where the service's own errors are looked for. Each is kept as one
    WARNING line. So is a 403 for a missing permission (a staff user opening an admin page they may
    not see), which Django logs with the PermissionDenied's traceback. uvicorn's ERROR after a
    refused handshake follows its INFO line saying the connection was rejected, with the status:
    it is kept at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None) if record.name == "django.request" else None
        denied = status == 403 and record.exc_info is not None and isinstance(record.exc_info[1], PermissionDenied)
        if record.name.startswith("django.security.") or status == 503 or denied:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        elif record.name == "uvicorn.error" and record.msg == REFUSED_HANDSHAKE:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class BrokerOutage(logging.Filter):
    """Celery beat logs a task it could not send as "Message Error" at ERROR with the chained
    exceptions' tracebacks and the stack: 200 lines every 10 s while Redis is down, where the
    message already says which task and why (a refused connection). Where the broker could not be
    reached, the record is kept as that one ERROR line; any other failure keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Message Error") and _unreachable(record.exc_info):
            record.msg, record.args = "Message Error: %s", record.args[:1] if isinstance(record.args, tuple) else ()
            record.exc_info = record.exc_text = None
        return True


def _unreachable(exc_info: tuple | None) -> bool:
    """Whether an exception, or one it was raised from or while handling, is kombu's "broker unreachable"."""
    error = exc_info[1] if exc_info else None
    while error is not None:
        if isinstance(error, OperationalError):
            return True
        error = error.__cause__ or error.__context__
    return False
