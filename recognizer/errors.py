"""One error vocabulary for every way digits says no: HTTP bodies, Django responses and websocket frames.

A client sees the same code and message whichever door it came in by, so the shapes are built
here once: `{"error": {"code": ..., "message": ...}}` over HTTP (the API's `ErrorOut` schema)
and `{"type": "error", "ref": ..., "code": ..., "message": ...}` on the websocket.
"""

from __future__ import annotations

from django.http import JsonResponse


def envelope(code: str, message: str) -> dict[str, dict[str, str]]:
    """The body of every HTTP error; plain data, so that ASGI middleware can send it too."""
    return {"error": {"code": code, "message": message}}


class Refused(Exception):
    """A request we answer with an error: its code, message, HTTP status, and when to retry.

    Raise it where the problem is found; whoever answers renders it for its protocol.
    """

    def __init__(self, code: str, message: str, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.retry_after = code, message, status, retry_after

    def body(self) -> dict[str, dict[str, str]]:
        """The HTTP body: the envelope."""
        return envelope(self.code, self.message)

    def response(self) -> JsonResponse:
        """A Django response with the envelope, and Retry-After when there is a wait to tell."""
        response = JsonResponse(self.body(), status=self.status)
        if self.retry_after is not None:
            response["Retry-After"] = str(self.retry_after)
        return response

    def frame(self, ref: object, **about: object) -> dict[str, object]:
        """The websocket error frame answering the client's `ref`.

        `about` says what the error is about (e.g. a drawing's `id`); it follows `ref`.
        """
        frame = {"type": "error", "ref": ref, **about, "code": self.code, "message": self.message}
        if self.retry_after is not None:
            frame["retry_after"] = self.retry_after
        return frame


def internal_error() -> Refused:
    """What a bug met by one request (or one websocket frame) answers."""
    return Refused("server_error", "something broke on our side", 500)


DATABASE_RETRY_AFTER = 5  # seconds a client is asked to wait while the database does not answer


def database_unavailable() -> Refused:
    """What a request (or a websocket frame) answers when the database did not answer (down, unreachable,
    or SQLite locked past its timeout): an outage to wait out, like load shedding, not a bug."""
    message = f"the service cannot reach its database: try again in {DATABASE_RETRY_AFTER} s"
    return Refused("unavailable", message, 503, retry_after=DATABASE_RETRY_AFTER)
