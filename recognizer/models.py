"""Drawings: every canvas a person sent, with what the model said about it."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models, transaction
from django.utils import timezone

digit_validators = [MaxValueValidator(9)]
NOT_A_DIGIT = 10  # the staff label for scribbles, letters and the like
LABEL_CHOICES = [(digit, str(digit)) for digit in range(10)] + [(NOT_A_DIGIT, "not a digit")]


class Drawing(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        DONE = "done"
        BLANK = "blank", "blank canvas"
        FAILED = "failed"

    class Source(models.TextChoices):
        WEBSOCKET = "ws", "websocket"
        API = "api", "HTTP API"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The submitted file exactly as received, and what validation read from it.
    image = models.BinaryField()
    content_type = models.CharField(max_length=16)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    source = models.CharField(max_length=3, choices=Source.choices)

    status = models.CharField(max_length=6, choices=Status.choices, default=Status.QUEUED)
    error = models.CharField(max_length=200, blank=True)
    digit = models.PositiveSmallIntegerField(null=True, blank=True, validators=digit_validators)
    confidence = models.FloatField(null=True, blank=True)
    probabilities = models.JSONField(null=True, blank=True)
    uncertain = models.BooleanField(
        null=True, blank=True, help_text="confidence below the model's calibrated line: perhaps not a digit"
    )
    model_version = models.CharField(max_length=64, blank=True)

    created_at = models.DateTimeField(default=timezone.now, help_text="when the drawing was received")
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="when its prediction was last queued")
    started_at = models.DateTimeField(null=True, blank=True, help_text="when a worker picked it up")
    finished_at = models.DateTimeField(null=True, blank=True, help_text="when its prediction was stored")
    preprocess_ms = models.FloatField(null=True, blank=True)
    predict_ms = models.FloatField(null=True, blank=True)

    feedback_label = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=digit_validators, help_text="what the person said it was"
    )
    feedback_at = models.DateTimeField(null=True, blank=True)
    label = models.PositiveSmallIntegerField(
        null=True, blank=True, choices=LABEL_CHOICES, help_text="what staff say it is"
    )
    labeled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    labeled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        permissions = [("label_drawing", "Can label drawings")]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["status", "enqueued_at"]),
            models.Index(fields=["digit"]),
            models.Index(fields=["label"]),
            models.Index(fields=["feedback_label"]),
            models.Index(fields=["model_version"]),
            models.Index(fields=["created_at"]),
            models.Index(fields=["labeled_at", "confidence"]),  # the review queue
        ]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def group(self) -> str:
        """The channel-layer group that hears this drawing's result."""
        return group_for(self.id)

    @property
    def latency_ms(self) -> float | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.created_at).total_seconds() * 1000, 3)

    def set_label(self, label: int | None, user) -> None:
        """Record what staff say the drawing is (None clears it), and who said so."""
        self.label, self.labeled_by, self.labeled_at = label, user, timezone.now()

    def result(self) -> dict:
        """The drawing as the API and the websocket describe it (JSON-ready)."""
        return {
            "id": str(self.id),
            "status": self.status,
            "digit": self.digit,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
            "uncertain": self.uncertain,
            "model_version": self.model_version or None,
            "created_at": self.created_at.isoformat(),
            "latency_ms": self.latency_ms,
            "error": self.error or None,
        }


class ModelVersion(models.Model):
    """A trained model. Its file lives in the database, so workers on any machine can load it."""

    version = models.CharField(max_length=64, unique=True)
    artifact = models.BinaryField(help_text="the .keras file")
    metadata = models.JSONField(default=dict)
    mnist_accuracy = models.FloatField(null=True, blank=True)
    reviewed_accuracy = models.FloatField(null=True, blank=True, help_text="on held-out reviewed drawings")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=models.Q(is_active=True), name="one_active_model")
        ]

    def __str__(self) -> str:
        return self.version

    @classmethod
    def active(cls) -> ModelVersion | None:
        return cls.objects.defer("artifact").filter(is_active=True).first()

    def activate(self) -> None:
        """Make this the version every worker uses; workers switch within seconds."""
        with transaction.atomic():
            ModelVersion.objects.filter(is_active=True).exclude(pk=self.pk).update(is_active=False)
            self.is_active, self.activated_at = True, timezone.now()
            self.save(update_fields=["is_active", "activated_at"])


def group_for(drawing_id: uuid.UUID | str) -> str:
    return f"drawing.{drawing_id}"
