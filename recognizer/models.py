"""Drawings: every canvas a person sent, with what the model said about it, and its life cycle.

A drawing is queued when it arrives, claimed by a worker, stored with its outcome (done,
blank or failed), and reviewed once staff give it a label. Every step is a method here, so
the web, the worker's task, the sweeper and the admin change a drawing the same way.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from itertools import chain

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, RegexValidator
from django.db import connection, connections, models, router, transaction
from django.db.models import F, Q
from django.utils import timezone

from recognizer import ink, plain_sql, segmentation
from recognizer.preprocessing import preprocess

log = logging.getLogger(__name__)
digit_validators = [MaxValueValidator(9)]
NUMBER_MAX_DIGITS = segmentation.MAX_DIGITS  # the longest number a drawing stores, read or corrected
NUMBER_DIGITS = rf"[0-9]{{1,{NUMBER_MAX_DIGITS}}}"  # a number as a drawing stores it: digits, nothing else
NUMBER_PATTERN = f"^{NUMBER_DIGITS}$"  # as JSON Schema (ECMA) says it
# A drawing's id as clients may send it, over HTTP and the websocket alike: a UUID's hex digits are
# case-insensitive (RFC 9562), and some clients write them upper case (Apple's uuidString).
DRAWING_ID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
number_validators = [
    RegexValidator(rf"\A{NUMBER_DIGITS}\Z", f"a number is 1 to {NUMBER_MAX_DIGITS} digits, 0 to 9, and nothing else")
]
NOT_A_DIGIT = 10  # the staff label for scribbles, letters and the like
MAX_WAITERS = 8  # sockets and requests a queued drawing's result is pushed to (the first and the newest that asked)
LABEL_CHOICES = [(digit, str(digit)) for digit in range(10)] + [(NOT_A_DIGIT, "not a digit")]
# The review queue's order: least confident first, then newest. The (label, confidence)
# index serves it: the queue is the rows whose label is NULL.
REVIEW_ORDER = (F("confidence").asc(nulls_last=True), "-created_at")
# What Drawing.model_input reads.
INPUT_FIELDS = ("image", "strokes", "pen", "width", "height")


def _column(name: str) -> str:
    return plain_sql.column(Drawing, name)


def _id_in(ids: Iterable[uuid.UUID | str]) -> tuple[str, list]:
    """`id IN (...)` over these ids: SQL and parameters."""
    marks, params = plain_sql.values(Drawing, "id", ids)
    return f"{_column('id')} IN ({marks})", params


def _within(drawings: list[Drawing], limit: int, pixels: int) -> list[Drawing]:
    """The first of `drawings` that fit in `limit` drawings and `pixels` pixels; the first always fits."""
    chosen: list[Drawing] = []
    for drawing in drawings[:limit]:
        pixels -= drawing.width * drawing.height
        if chosen and pixels < 0:
            break
        chosen.append(drawing)
    return chosen


def label_fields(label: int | F | None, user, number: str | F | None = None) -> dict:
    """The columns a label writes: a digit (or not a digit) as `label`, or, for a number drawing, the
    digits as `number`. Clearing both clears who and when: the drawing is unreviewed again."""
    if label is None and number is None:
        return {"label": None, "label_number": None, "labeled_by": None, "labeled_at": None}
    return {"label": label, "label_number": number, "labeled_by": user, "labeled_at": timezone.now()}


class DrawingQuerySet(models.QuerySet):
    def queued(self) -> DrawingQuerySet:
        return self.filter(status=Drawing.Status.QUEUED)

    def without_payload(self) -> DrawingQuerySet:
        """Without the image and strokes: what answering about a drawing needs."""
        return self.defer("image", "strokes")

    async def add_waiter(self, drawing_id: uuid.UUID, channel: str) -> bool:
        """Send this drawing's result, while it is queued, to `channel` too; False if it is not queued.

        Every socket or request that asks gets the push: one that took the push over left the socket
        that sent the drawing, still open, without an answer. Past MAX_WAITERS, the first (the sender,
        while it stays) and the newest: eight sockets asking must not take it from the sender either.
        """
        queued = self.queued().filter(pk=drawing_id)
        while (waiting := await queued.values_list("reply_to", flat=True).afirst()) is not None:
            channels = waiting.split()
            if channel in channels:
                return True
            asked = [*channels, channel]
            kept = asked[:1] + asked[1:][-(MAX_WAITERS - 1) :]
            # Written only over the list read, so that a waiter added or gone meanwhile is not undone.
            if await queued.filter(reply_to=waiting).aupdate(reply_to=" ".join(kept)):
                return True
        return False

    async def remove_waiter(self, channel: str) -> None:
        """Send these drawings' results, while queued, no more to `channel` (a socket or request that
        left: channels-redis would keep them in this process for a reader that is gone)."""
        queued = self.queued()
        await queued.filter(reply_to=channel).aupdate(reply_to="")  # the usual case, in one statement
        shared = [pk async for pk in queued.filter(reply_to__contains=channel).values_list("pk", flat=True)]
        for pk in shared:
            row = queued.filter(pk=pk)
            while (waiting := await row.values_list("reply_to", flat=True).afirst()) and channel in waiting.split():
                others = " ".join(other for other in waiting.split() if other != channel)
                if await row.filter(reply_to=waiting).aupdate(reply_to=others):
                    break

    # Reviewed means labeled by staff (a digit, not a digit, or a number), here and everywhere else.
    def reviewed(self) -> DrawingQuerySet:
        return self.filter(Q(label__isnull=False) | Q(label_number__isnull=False))

    def unreviewed(self) -> DrawingQuerySet:
        return self.filter(label__isnull=True, label_number__isnull=True)

    def review_queue(self) -> DrawingQuerySet:
        """Answered drawings waiting for a label, least confident first."""
        answered = self.filter(status__in=[Drawing.Status.DONE, Drawing.Status.BLANK])
        return answered.unreviewed().defer("image").order_by(*REVIEW_ORDER)

    def mark_stale_queued_again(self, older_than: float, limit: int) -> list[uuid.UUID]:
        """Ids of the drawings still queued `older_than` seconds after they were last queued, stamped as queued now.

        The caller publishes them again: a publish that failed while Redis was down, or a
        queue that Redis forgot when it restarted, is caught this way.
        """
        now = timezone.now()
        stale = self.queued().filter(enqueued_at__lt=now - timedelta(seconds=older_than))
        # Skipping rows a worker holds locked (it is answering them): see _take.
        stale = stale.select_for_update(skip_locked=True).order_by("enqueued_at")
        with transaction.atomic(using=self.db):
            ids = list(stale.values_list("id", flat=True)[:limit])
            self.filter(pk__in=ids).update(enqueued_at=now)
        return ids

    def claim(
        self, own: list[Drawing], now: datetime, limit: int, hold: float, pixels: int
    ) -> tuple[list[Drawing], list[Drawing]]:
        """A task's own queued drawings, then the oldest other queued ones, marked as taken at `now`;
        and the own drawings left out, which the caller queues again.

        A drawing another worker took less than `hold` seconds ago is left to it. Read, then
        take with one conditional UPDATE: of two workers reading the same drawing, the
        database lets only one change it, and the other learns from the row count. The same
        UPDATE counts an attempt on every drawing it takes.

        The batch holds at most `limit` drawings and `pixels` pixels (the first always goes),
        so that no batch comes near the task's time limit. A drawing tried before (its batch
        never finished: the worker died) is tried alone, so a drawing that kills workers takes
        no others down with it.
        """
        free_since = now - timedelta(seconds=hold)
        if tried := [d for d in own if d.attempts]:  # alone
            batch = tried[:1]
        elif own:
            batch = _within(own, limit, pixels)
            spent = sum(d.width * d.height for d in batch)
            batch += self._oldest_free(free_since, limit - len(batch), pixels - spent, besides=own)
        else:
            batch = self._oldest_free(free_since, limit, pixels)
        left = [d for d in own if d not in batch]
        if not batch:
            return [], left  # only batch-mates' messages, the common case under load: no write
        if self._take(batch, now, free_since) < len(batch):  # another worker holds some (or took them meanwhile)
            batch = self._stamped(batch, started_at=now)
        for drawing in batch:
            drawing.started_at = now
            drawing.attempts += 1  # as the UPDATE wrote it: it changed only rows still as they were read
        return batch, left

    # The claim's queries run for every task: in plain SQL (recognizer.plain_sql), not the ORM's.

    def load(self, ids: Iterable[uuid.UUID | str], queued: bool = False) -> list[Drawing]:
        """The drawings with these ids (only those still queued, if `queued`), whole, in the order they were queued."""
        if not (ids := list(ids)):
            return []
        where, params = _id_in(ids)
        if queued:
            where, params = f"{where} AND {_column('status')} = %s", [*params, Drawing.Status.QUEUED.value]
        return plain_sql.select(Drawing, where, params, order_by=_column("enqueued_at"))

    def existing(self, ids: Iterable[uuid.UUID | str]) -> set[str]:
        """Those of these ids that a drawing has, as strings."""
        if not (ids := list(ids)):
            return set()
        where, params = _id_in(ids)
        return {str(pk) for (pk,) in plain_sql.fields(Drawing, ("id",), where, params)}

    def reply_channels(self, ids: Iterable[uuid.UUID | str]) -> dict[uuid.UUID, str]:
        """Where the results of these drawings go: id -> channels (space-separated), for those someone waits for."""
        if not (ids := list(ids)):
            return {}
        where, params = _id_in(ids)
        where = f"{where} AND NOT {_column('reply_to')} = %s"
        return dict(plain_sql.fields(Drawing, ("id", "reply_to"), where, [*params, ""]))

    @staticmethod
    def _free(free_since: datetime) -> tuple[str, list]:
        """Queued, and not taken by a worker since `free_since`: SQL and parameters."""
        started = _column("started_at")
        where = f"{_column('status')} = %s AND ({started} IS NULL OR {started} < %s)"
        return where, [Drawing.Status.QUEUED.value, plain_sql.value(Drawing, "started_at", free_since)]

    def _take(self, batch: list[Drawing], now: datetime, free_since: datetime) -> int:
        """Mark the batch's drawings that are still free as taken at `now`, counting an attempt; how many."""
        free, params = self._free(free_since)
        taking, ids = _id_in(d.pk for d in batch)
        table, started, attempts = Drawing._meta.db_table, _column("started_at"), _column("attempts")
        assignments = f"{started} = %s, {attempts} = {attempts} + 1"
        which = f"{free} AND {taking}"
        if connection.features.has_select_for_update_skip_locked:
            # A row locked by another transaction is being claimed or answered by another
            # worker, or by one whose network dropped mid-write (its lock then lasts until the
            # server ends that session): leave it, rather than wait past the task's time limit.
            which = f"{_column('id')} IN (SELECT {_column('id')} FROM {table} WHERE {which} FOR UPDATE SKIP LOCKED)"
        sql = f"UPDATE {table} SET {assignments} WHERE {which}"
        return plain_sql.execute(Drawing, sql, [plain_sql.value(Drawing, "started_at", now), *params, *ids])

    def _oldest_free(
        self, free_since: datetime, limit: int, pixels: int, besides: list[Drawing] | None = None
    ) -> list[Drawing]:
        """The oldest free drawings: at most `limit` of them, and `pixels` pixels in all.

        The first always goes, whatever its size, unless they join a batch (of the drawings
        `besides`); a drawing tried before goes only alone. Their sizes are read first, along the
        (status, enqueued_at) index, so that only the drawings chosen are read whole.
        """
        joining = besides is not None
        if limit <= 0 or (joining and pixels <= 0):
            return []
        where, params = self._free(free_since)
        if besides:
            others, ids = _id_in(d.pk for d in besides)
            where, params = f"{where} AND NOT ({others})", params + ids
        names = ("id", "width", "height", "attempts")
        sizes = plain_sql.fields(Drawing, names, where, params, order_by=_column("enqueued_at"), limit=limit)
        chosen = []
        for pk, width, height, attempts in sizes:
            first = not (chosen or joining)
            if attempts:  # tried before, and its batch never finished
                if first:
                    chosen.append(pk)
                    break
                continue
            pixels -= width * height
            if pixels < 0 and not first:
                break
            chosen.append(pk)
        rows = {d.pk: d for d in self.load(chosen)}
        return [rows[pk] for pk in chosen if pk in rows]

    def release(self, drawings: list[Drawing], started_at: datetime) -> int:
        """Give back drawings a task took at `started_at` but never tried (its time ran out).

        They are free and untried again, so the next task takes them at once, in a batch.
        """
        taken = self.queued().filter(pk__in=[d.pk for d in drawings], started_at=started_at)
        return taken.update(started_at=None, attempts=F("attempts") - 1)

    def store_outcomes(self, drawings: list[Drawing], fields: list[str]) -> list[Drawing]:
        """Write the drawings' `fields` with one prepared conditional UPDATE in one transaction.

        executemany, not bulk_update: bulk_update builds a CASE per field and row, which costs
        more Python time than predicting the batch. Only a still-queued drawing is written, so
        a drawing another worker answered meanwhile keeps its first answer. Returns the
        drawings written; each must carry the same `finished_at`.
        """
        columns = [Drawing._meta.get_field(name) for name in fields]
        assignments = ", ".join(f"{connection.ops.quote_name(column.column)} = %s" for column in columns)
        # Table and column names come from the model; every value goes as a parameter.
        sql = f"UPDATE {Drawing._meta.db_table} SET {assignments} WHERE id = %s AND status = %s"
        queued = Drawing.Status.QUEUED.value
        rows = [
            [column.get_db_prep_save(getattr(d, column.attname), connection) for column in columns]
            + [Drawing._meta.pk.get_db_prep_value(d.pk, connection), queued]
            for d in drawings
        ]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, rows)
            written = cursor.rowcount
        if written == len(drawings):
            return drawings
        return self._stamped(drawings, finished_at=drawings[0].finished_at)

    def _stamped(self, drawings: list[Drawing], **stamp) -> list[Drawing]:
        """Those of the drawings whose row carries this stamp: the ones a conditional UPDATE changed."""
        mine = set(self.filter(pk__in=[d.pk for d in drawings], **stamp).values_list("pk", flat=True))
        return [d for d in drawings if d.pk in mine]

    async def give_feedback(self, label: int | None = None, number: str | None = None) -> int:
        """Record the digit (or, for a number, the digits) the person says these drawings are; the count changed.

        One feedback in effect: a later one replaces it (a digit replaces a number, too) and is
        counted, so that a review can tell a person's one answer from a label flipped again and again.
        """
        return await self.aupdate(
            feedback_label=label,
            feedback_number=number,
            feedback_at=timezone.now(),
            feedback_count=F("feedback_count") + 1,
        )

    def label(self, label: int | None, user) -> int:
        """Give these drawings a staff label (None: unreviewed again); the count changed. A number
        drawing labeled with a digit is the number of that one digit (see `Drawing.check_label`)."""
        if label is None or label == NOT_A_DIGIT:
            return self.update(**label_fields(label, user))
        digits = self.filter(mode=Drawing.Mode.DIGIT).update(**label_fields(label, user))
        return digits + self.filter(mode=Drawing.Mode.NUMBER).update(**label_fields(None, user, str(label)))

    def confirmable(self) -> DrawingQuerySet:
        """The drawings with a prediction to confirm: a digit read, or a number drawing's number."""
        return self.filter(
            Q(mode=Drawing.Mode.DIGIT, digit__isnull=False) | Q(mode=Drawing.Mode.NUMBER, number__isnull=False)
        )

    def confirm(self, user) -> int:
        """Take the prediction as the label (a number drawing's: the number read), for the drawings that have one."""
        digits = self.confirmable().filter(mode=Drawing.Mode.DIGIT).update(**label_fields(F("digit"), user))
        numbers = self.confirmable().filter(mode=Drawing.Mode.NUMBER)
        return digits + numbers.update(**label_fields(None, user, number=F("number")))


class Drawing(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        DONE = "done"
        BLANK = "blank", "blank canvas"
        FAILED = "failed"

    class Source(models.TextChoices):
        WEBSOCKET = "ws", "websocket"
        API = "api", "HTTP API"

    class Mode(models.TextChoices):
        DIGIT = "digit", "one digit"
        NUMBER = "number", "a number"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # What was submitted, exactly as received: an image file, or pen strokes (then no image).
    image = models.BinaryField(blank=True, default=b"", help_text="the image file; empty for strokes")
    content_type = models.CharField(max_length=16, blank=True, help_text="the image's type; empty for strokes")
    strokes = models.JSONField(
        null=True, blank=True, help_text="pen-down traces in the order drawn: [[[x, y] or [x, y, t], ...], ...]"
    )
    pen = models.FloatField(null=True, blank=True, help_text="the strokes' line width in canvas pixels")
    width = models.PositiveIntegerField(help_text="the canvas (or image) width in pixels")
    height = models.PositiveIntegerField(help_text="the canvas (or image) height in pixels")
    source = models.CharField(max_length=3, choices=Source.choices)
    mode = models.CharField(
        max_length=6, choices=Mode.choices, default=Mode.DIGIT, help_text="read one digit, or several left to right"
    )
    # The channel-layer channels (space-separated) of the sockets and requests awaiting the result:
    # the worker sends there directly, without a group per drawing. Usually one: the sender's.
    reply_to = models.CharField(max_length=MAX_WAITERS * 100, blank=True)

    status = models.CharField(max_length=6, choices=Status.choices, default=Status.QUEUED)
    error = models.CharField(max_length=200, blank=True)
    digit = models.PositiveSmallIntegerField(null=True, blank=True, validators=digit_validators)
    confidence = models.FloatField(null=True, blank=True)
    probabilities = models.JSONField(null=True, blank=True)
    uncertain = models.BooleanField(
        null=True, blank=True, help_text="confidence below the model's calibrated line: perhaps not a digit"
    )
    # Number mode only (digit mode derives both in result(), so its hot path writes nothing more).
    # The number columns are NULL when nothing was read or said, as `digit` and `label` are: the
    # API's null, and what "not reviewed" filters on.
    number = models.CharField(  # noqa: DJ001
        max_length=NUMBER_MAX_DIGITS, null=True, blank=True, help_text="the digits read, left to right"
    )
    digits = models.JSONField(
        null=True,
        blank=True,
        help_text='per digit, left to right: {"digit", "confidence", "probabilities", "box": [x0, y0, x1, y1]} '
        "in the drawing's pixels",
    )
    model_version = models.CharField(max_length=64, blank=True)

    created_at = models.DateTimeField(default=timezone.now, help_text="when the drawing was received")
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="when its prediction was last queued")
    started_at = models.DateTimeField(null=True, blank=True, help_text="when a worker picked it up")
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="how many times a worker took it; past MAX_ATTEMPTS it ends failed"
    )
    finished_at = models.DateTimeField(null=True, blank=True, help_text="when its prediction was stored")
    preprocess_ms = models.FloatField(null=True, blank=True)
    predict_ms = models.FloatField(null=True, blank=True)

    feedback_label = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=digit_validators, help_text="what the person said it was"
    )
    feedback_number = models.CharField(  # noqa: DJ001 (see number)
        max_length=NUMBER_MAX_DIGITS,
        null=True,
        blank=True,
        validators=number_validators,
        help_text="the number the person said it was",
    )
    feedback_at = models.DateTimeField(null=True, blank=True)
    feedback_count = models.PositiveIntegerField(
        default=0, help_text="how often the person gave feedback; the last one is kept"
    )
    label = models.PositiveSmallIntegerField(
        null=True, blank=True, choices=LABEL_CHOICES, help_text="what staff say it is"
    )
    label_number = models.CharField(  # noqa: DJ001 (see number)
        max_length=NUMBER_MAX_DIGITS,
        null=True,
        blank=True,
        validators=number_validators,
        help_text="what staff say a number drawing reads, left to right",
    )
    labeled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    labeled_at = models.DateTimeField(null=True, blank=True)

    objects = DrawingQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at",)
        permissions = [("label_drawing", "Can label drawings")]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["status", "enqueued_at"]),
            models.Index(fields=["digit"]),
            models.Index(fields=["label", "confidence"]),  # reviewed or not; the review queue
            models.Index(fields=["feedback_label"]),
            models.Index(fields=["model_version"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def latency_ms(self) -> float | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.created_at).total_seconds() * 1000, 3)

    @classmethod
    def arrived(cls, **fields) -> Drawing:
        """A drawing that just arrived, queued for prediction, not yet stored (see store_arrived)."""
        now = timezone.now()
        return cls(created_at=now, enqueued_at=now, status=cls.Status.QUEUED, **fields)

    @classmethod
    def store_arrived(cls, drawings: list[Drawing], then: Callable[[], None] | None = None) -> None:
        """Insert new drawings in one transaction of prepared multi-row INSERTs; `then` runs once it is committed.

        Not `objects.create` or `bulk_create`: building the INSERT of some thirty fields was
        about half of the time storing a drawing took, SQLite's executing it a tenth. The rows
        are built before the transaction, and go together in as few statements as the database
        allows rather than one `executemany` step each: SQLite's one write lock is held from
        BEGIN IMMEDIATE to COMMIT, and after every step the web's storing thread must win the
        GIL back from its busy event loop.
        """
        # The connection itself, looked up once: `connection` is a proxy, dearer than the field's work.
        db = connections[router.db_for_write(cls)]
        columns = cls._meta.concrete_fields
        names = ", ".join(db.ops.quote_name(column.column) for column in columns)
        rows = [[column.get_db_prep_save(column.pre_save(d, True), db) for column in columns] for d in drawings]
        per_statement = db.ops.bulk_batch_size(columns, drawings)
        statements = []
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            values = db.ops.bulk_insert_sql(columns, [["%s"] * len(columns)] * len(chunk))
            # Table and column names come from the model; every value goes as a parameter.
            statements.append((f"INSERT INTO {cls._meta.db_table} ({names}) {values}", list(chain(*chunk))))
        with transaction.atomic(using=db.alias), db.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)
            if then:
                transaction.on_commit(then, using=db.alias)
        for drawing in drawings:
            drawing._state.adding, drawing._state.db = False, db.alias

    def clean(self) -> None:
        self.check_label(self.label, self.label_number)

    def check_label(self, label: int | None, number: str | None) -> None:
        """ValidationError unless this label fits the drawing: a digit (or not a digit), or for a number
        drawing its digits (or not a digit), not both. Export and the quality page read a label by
        the drawing's mode: a number drawing's digit label would train its whole ink as one digit."""
        if label is not None and number is not None:
            raise ValidationError("give the drawing a label or a number, not both")
        if self.mode == self.Mode.NUMBER and label not in (None, NOT_A_DIGIT):
            raise ValidationError(
                {"label": "this is a number drawing: give its digits as the number (one digit is a number too)"}
            )
        if number is not None and self.mode != self.Mode.NUMBER:
            raise ValidationError(
                {"label_number": "this drawing was read as one digit: give it a label (0-9 or not a digit)"}
            )

    def set_label(self, label: int | None, user, number: str | None = None) -> list[str]:
        """Record what staff say the drawing is, a digit or a number (both None clears it), and who
        said so; the fields it set."""
        fields = label_fields(label, user, number)
        for name, value in fields.items():
            setattr(self, name, value)
        return list(fields)

    def label_as(self, label: int | None, user, number: str | None = None) -> None:
        self.save(update_fields=self.set_label(label, user, number))

    def model_input(self) -> np.ndarray:
        """The 28x28 input the model reads for this drawing, from its strokes or its image; or BlankDrawing.

        The one way every reader (worker, review page, export, retraining) turns a stored drawing
        into the model's input.
        """
        if self.strokes is not None:
            return ink.rasterise(ink.refuse_dots(ink.Ink.from_stored(self.strokes, self.width, self.height, self.pen)))
        return preprocess(bytes(self.image))

    def result(self) -> dict:
        """The drawing as the API and the websocket describe it (JSON-ready)."""
        number, digits = (self.number, self.digits) if self.mode == self.Mode.NUMBER else self.one_digit_read()
        return {
            "id": str(self.id),
            "status": self.status,
            "mode": self.mode,
            "digit": self.digit,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
            "number": number,
            "digits": digits,
            "uncertain": self.uncertain,
            "model_version": self.model_version or None,
            # As the HTTP API writes it (Django's encoder: milliseconds, Z): a pushed result reads the same.
            "created_at": DjangoJSONEncoder().default(self.created_at),
            "latency_ms": self.latency_ms,
            "error": self.error or None,
        }

    def one_digit_read(self) -> tuple[str | None, list[dict] | None]:
        """A digit-mode drawing's `number` and `digits`, made from its digit as it is answered.

        The worker stores neither in digit mode, so that its hot path writes what it always did.
        The box is the whole drawing: digit mode does not locate the ink, and a result read
        without the strokes (as lookups read it) could not.
        """
        if self.digit is None:  # queued, blank or failed
            return None, None
        box = [0.0, 0.0, float(self.width), float(self.height)]  # floats, as the number mode's boxes
        read = {"digit": self.digit, "confidence": self.confidence, "probabilities": self.probabilities, "box": box}
        return str(self.digit), [read]


class ModelVersion(models.Model):
    """A trained model. Its file lives in the database, so workers on any machine can load it."""

    version = models.CharField(max_length=64, unique=True)
    artifact = models.BinaryField(help_text="the .keras file")
    # Workers predict with this export of the .keras file (LiteRT) and never load Keras itself.
    runtime_artifact = models.BinaryField(default=b"", blank=True, help_text="the .tflite export workers load")
    metadata = models.JSONField(default=dict)
    mnist_accuracy = models.FloatField(null=True, blank=True)
    reviewed_accuracy = models.FloatField(null=True, blank=True, help_text="on held-out reviewed drawings")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="who last activated it (empty: a command, e.g. manage.py retrain)",
    )  # fmt: skip
    # The web cannot load a model (no TensorFlow in it), so the check is made where the version
    # is registered: training.retraining.verify loads the stored file back as a worker does and
    # predicts fixed inputs. Only a version that passed may be activated.
    verified_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="when its stored file was loaded and predicted fixed inputs; empty: never, or it failed",
    )
    verification = models.JSONField(default=dict, blank=True, help_text="what that check saw, or why it failed")

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=models.Q(is_active=True), name="one_active_model")
        ]

    class NotVerified(Exception):
        """The version's file was never checked, or failed its check: activating it could stop every prediction."""

    def __str__(self) -> str:
        return self.version

    @classmethod
    def active(cls) -> ModelVersion | None:
        return cls.objects.defer("artifact", "runtime_artifact").filter(is_active=True).first()

    def activate(self, user=None) -> None:
        """Make this the version every worker reads with, from its next drawing. Only a verified version."""
        if self.verified_at is None:
            if error := self.verification.get("error"):
                raise self.NotVerified(f"Version {self.version} failed its check and cannot be activated: {error}")
            raise self.NotVerified(
                f"Version {self.version} was never checked and cannot be activated: "
                f"run `manage.py verify_models {self.version}` where TensorFlow is installed"
            )
        with transaction.atomic():
            others = ModelVersion.objects.filter(is_active=True).exclude(pk=self.pk)
            previous = list(others.values_list("version", flat=True))
            others.update(is_active=False)
            self.is_active, self.activated_at, self.activated_by = True, timezone.now(), user
            self.save(update_fields=["is_active", "activated_at", "activated_by"])
        log.info(
            "model version %s activated by %s at %s (was: %s)",
            self.version, user.get_username() if user else "a command", self.activated_at.isoformat(),
            ", ".join(previous) or "none",
        )  # fmt: skip
