"""Logging what clients get wrong as one line each, not as the service's errors."""

from __future__ import annotations

import logging

# What uvicorn logs at ERROR after every websocket handshake the application refuses with a
# response of its own (a foreign Origin: 403, an unknown path: 404), as if none had been sent.
REFUSED_HANDSHAKE = "ASGI callable returned without completing handshake."


class ClientMistakes(logging.Filter):
    """Django logs a request refused as suspicious (a Host not allowed, a form of too many fields:
    400s) at ERROR with its traceback, and every 503 (load shed, by design) at ERROR: a client could
    fill the log with them, where the service's own errors are looked for. Each is kept as one
    WARNING line. uvicorn's ERROR after a refused handshake follows its INFO line saying the
    connection was rejected, with the status: it is kept at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        shed = record.name == "django.request" and getattr(record, "status_code", None) == 503
        if record.name.startswith("django.security.") or shed:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        elif record.name == "uvicorn.error" and record.msg == REFUSED_HANDSHAKE:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
