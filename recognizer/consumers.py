"""The websocket at /ws/recognize/: drawings in, `queued` and `prediction` frames out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import aclose_old_connections
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError

from recognizer import backlog, metrics, ratelimit, services
from recognizer.errors import Refused, database_unavailable, internal_error
from recognizer.images import CheckedImage
from recognizer.ink import Ink
from recognizer.models import DRAWING_ID, Drawing

log = logging.getLogger(__name__)

MAX_REF_LENGTH = 200
UUID = re.compile(DRAWING_ID)
# Messages whose handlers reach the database only through database_sync_to_async (group commit),
# which tidies the thread's connections itself, or not at all (a result goes out on the socket).
# Channels would hop to its database thread before each of them to close old connections: two
# hops per drawing.
NO_TIDYING = frozenset({"websocket.receive", "drawing.result"})


def result_frame(result: dict, ref: object) -> dict:
    """The frame that answers a drawing: its result as the HTTP API gives it, blank or failed
    included (an error frame is for what the server refuses; this drawing was accepted)."""
    return {"type": "prediction", "ref": ref, **result}


# A strokes frame up to this size is checked on the event loop: under 0.1 ms for a typical
# digit's 2 KB, less than the hop to a thread would cost. Bigger ones, and images (Pillow
# may decode a JPEG whole), are checked in a thread, so that no frame holds up the others.
CHECKED_ON_THE_LOOP = 16 * 1024


def read_frame(message: dict) -> tuple[CheckedImage | Ink, str]:
    """A drawing frame's drawing and mode, checked (the mode first: it costs nothing); or Refused."""
    mode = services.read_mode(message)
    return services.read_drawing(message), mode


async def check_frame(message: dict, size: int) -> tuple[CheckedImage | Ink, str]:
    """read_frame, on the event loop or in a thread (see CHECKED_ON_THE_LOOP); `size` is the frame's length."""
    if size <= CHECKED_ON_THE_LOOP and "image" not in message:
        return read_frame(message)
    return await sync_to_async(read_frame, thread_sensitive=False)(message)


async def current_result(drawing_id: uuid.UUID) -> dict | None:
    drawing = await Drawing.objects.without_payload().filter(pk=drawing_id).afirst()
    return drawing.result() if drawing else None


class RecognizeConsumer(AsyncJsonWebsocketConsumer):
    """One handler per message type; workers send results to this consumer's own channel."""

    client = slot = ""
    holding: asyncio.Task | None = None  # keeps this socket counted among the client's (ratelimit)

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # However it ended: Channels calls no disconnect for a consumer that raised, and a
            # socket counted for ever would lock its client's address out.
            await self.stop_counting()

    async def dispatch(self, message: dict) -> None:
        if message["type"] in NO_TIDYING:
            return await getattr(self, get_handler_name(message))(message)
        await super().dispatch(message)

    async def send_json(self, content: dict, close: bool = False) -> None:
        try:
            await super().send_json(content, close)
        except OSError:
            # The client left (ASGI servers raise an OSError on a send to a closed socket): nobody
            # to tell. Its drawing is stored and read all the same; a client that closes right
            # after sending is no error of ours, and was logged as one per frame.
            log.debug("the client left before %s frame could be sent", content.get("type"))

    async def connect(self) -> None:
        # Drawing id -> the refs of this socket's frames that await its result (the drawing's, then any
        # status for it while queued), each answered by one prediction.
        self.refs: dict[str, list[object]] = {}
        # The bucket this client's limits count in (uvicorn has put the real client behind a
        # trusted proxy in scope["client"]), and this connection in its count of open sockets.
        self.client = ratelimit.client_key(self.scope["client"][0] if self.scope.get("client") else "")
        self.slot = uuid.uuid4().hex
        await self.accept()
        if not await ratelimit.open_connection(self.client, self.slot):
            # Accepted first, so that the client reads why in the usual error frame; 1013: try again later.
            await self.refuse(None, ratelimit.too_many_connections())
            return await self.close(code=1013)
        self.holding = asyncio.create_task(ratelimit.hold_connection(self.client, self.slot))

    async def stop_counting(self) -> None:
        if self.holding:
            self.holding.cancel()
            self.holding = None
            await ratelimit.close_connection(self.client, self.slot)

    async def disconnect(self, code: int) -> None:
        await self.stop_counting()
        if self.refs:
            # Nobody reads this channel any more: results still to come go nowhere (and do not
            # wait in this process's channel-layer buffer for a reader that left).
            with contextlib.suppress(DatabaseError):
                await Drawing.objects.filter(pk__in=list(self.refs)).remove_waiter(self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            return await self.refuse_frame(None, Refused("text_frames_only", "send JSON in text frames"))
        # In bytes, as the limit and the byte budget count (isascii is a flag CPython keeps: free).
        size = len(text_data) if text_data.isascii() else len(text_data.encode(errors="surrogatepass"))
        if size > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return await self.refuse_frame(
                None, Refused("frame_too_large", f"frames are limited to {limit} bytes", 413)
            )
        try:
            # A byte-order mark is read past, as over HTTP (RFC 8259 lets a parser ignore one).
            message = json.loads(text_data.removeprefix("\ufeff"))
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack allows
            return await self.refuse_frame(
                None, Refused("invalid_json", "the frame is not valid JSON (or nests too deeply)")
            )
        if not isinstance(message, dict):
            return await self.refuse_frame(
                None, Refused("invalid_message", "a frame must be a JSON object with a type")
            )
        ref, kind = message.get("ref"), message.get("type")
        # A lone surrogate (JSON's "\ud800") would be echoed back as no strict parser reads it.
        if ref is not None and not (isinstance(ref, str) and len(ref) <= MAX_REF_LENGTH and _unicode(ref)):
            refuse = self.refuse_frame if kind == "drawing" else self.refuse  # a status, a ping: no drawing
            return await refuse(
                None, Refused("invalid_ref", f"ref must be a string of at most {MAX_REF_LENGTH} characters")
            )
        handler = {"drawing": self.on_drawing, "status": self.on_status}.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return await self.refuse(ref, Refused("unknown_type", 'type must be "drawing" or "status"'))
        try:
            await handler(message, ref, size)
        except RecursionError:
            # A value parsed just under the stack's depth, then printed deeper (a status id): refused, not a crash.
            await self.refuse(ref, Refused("invalid_message", "the frame nests too deeply"))
        except (OperationalError, InterfaceError) as exc:
            # The database did not answer: an outage to wait out (retry_after), not a bug.
            log.warning("a %s frame met a database that did not answer: %s", kind, exc.__class__.__name__)
            await self.refuse(ref, database_unavailable())
        except Exception:
            # A bug met by one frame answers that frame, as a 500 does over HTTP; the socket and
            # its other drawings go on.
            log.exception("a %s frame failed", kind)
            await self.refuse(ref, internal_error())

    async def on_drawing(self, message: dict, ref: object, size: int) -> None:
        try:
            services.check_present(message)
        except Refused as exc:
            return await self.refuse_frame(ref, exc)
        # Shed load before anything is counted or stored; a figure read at most a second ago.
        if overloaded := await backlog.overloaded():
            return await self.refuse(ref, overloaded)
        if over_limit := await ratelimit.admit(self.client, size):
            return await self.refuse(ref, over_limit)
        drawing_id = uuid.uuid4()
        # Awaited before the drawing is queued, so even the fastest result finds its ref.
        self.refs[str(drawing_id)] = [ref]
        try:
            drawn, mode = await check_frame(message, size)
            await services.submit(drawn, Drawing.Source.WEBSOCKET, drawing_id, self.channel_name, mode)
        except Refused as exc:
            del self.refs[str(drawing_id)]
            return await self.refuse_frame(ref, exc)
        await self.send_json({"type": "queued", "id": str(drawing_id), "ref": ref})

    async def on_status(self, message: dict, ref: object, size: int) -> None:
        """Where a drawing is now, for a client that missed its push (the layer is at-most-once)."""
        # The forms the HTTP path takes, no more: uuid.UUID reads {...}, urn:uuid:... and bare hex too.
        sent = message.get("id")
        if not (isinstance(sent, str) and UUID.fullmatch(sent)):
            return await self.refuse(ref, Refused("invalid_id", "id must be a drawing's UUID"))
        drawing_id = uuid.UUID(sent)
        if retry_after := await ratelimit.read_retry_after(self.client):
            return await self.refuse(ref, ratelimit.refusal(retry_after, "requests"))
        await aclose_old_connections()  # the async ORM below does not tidy them (see NO_TIDYING)
        # Still queued: its result comes here too from now on, whichever socket sent it. Set
        # before it is read, so a result stored in between is read rather than missed.
        awaiting = self.refs.setdefault(str(drawing_id), [])
        awaiting.append(ref)
        if await Drawing.objects.add_waiter(drawing_id, self.channel_name):
            return await self.send_json({"type": "queued", "id": str(drawing_id), "ref": ref})
        awaiting.pop()  # answered below; a ref of the drawing's own frame still awaits its push
        if not awaiting:
            del self.refs[str(drawing_id)]
        result = await current_result(drawing_id)
        if result is None:
            return await self.refuse(ref, Refused("not_found", "no drawing has this id", 404))
        await self.send_json(result_frame(result, ref))

    async def drawing_result(self, event: dict) -> None:
        """A worker's result for one of this socket's drawings (message type "drawing.result")."""
        result = event["drawing"]
        if result["id"] not in self.refs:
            return  # already answered (a redelivered task sends again)
        for ref in self.refs.pop(result["id"]):
            await self.send_json(result_frame(result, ref))
        metrics.observe_result(result)

    async def refuse(self, ref: object, refused: Refused) -> None:
        """Answer the frame `ref` with an error frame (the connection stays open)."""
        await self.send_json(refused.frame(ref))

    async def refuse_frame(self, ref: object, refused: Refused) -> None:
        """`refuse` a frame that was, or may have been (not JSON, too large), a drawing: counted by its
        code in digits_drawings_refused_total, as the HTTP door counts a body it refuses."""
        metrics.DRAWINGS_REFUSED.labels(refused.code).inc()
        await self.refuse(ref, refused)


def _unicode(text: str) -> bool:
    """Whether the text is Unicode throughout: no lone surrogate, which JSON's escapes can make."""
    return text.isascii() or not any("\ud800" <= c <= "\udfff" for c in text)
