"""Reviewing drawings in the Django admin."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from recognizer.models import Drawing


@admin.register(Drawing)
class DrawingAdmin(admin.ModelAdmin):
    list_display = (
        "thumbnail",
        "digit",
        "confidence_percent",
        "feedback_label",
        "label",
        "status",
        "model_version",
        "latency",
        "created_at",
    )
    list_display_links = ("thumbnail", "digit")
    list_filter = ("status", "digit", "label", "feedback_label", "source", "model_version", "created_at")
    search_fields = ("id",)
    date_hierarchy = "created_at"
    list_per_page = 50
    fields = (
        "picture",
        ("status", "error"),
        ("digit", "confidence", "model_version"),
        "probabilities",
        ("feedback_label", "feedback_at"),
        ("label", "labeled_by", "labeled_at"),
        ("source", "content_type", "width", "height"),
        ("created_at", "started_at", "finished_at"),
        ("preprocess_ms", "predict_ms"),
    )
    # Everything but the staff label is a record of what happened.
    readonly_fields = (
        "picture",
        "status",
        "error",
        "digit",
        "confidence",
        "model_version",
        "probabilities",
        "feedback_label",
        "feedback_at",
        "labeled_by",
        "labeled_at",
        "source",
        "content_type",
        "width",
        "height",
        "created_at",
        "started_at",
        "finished_at",
        "preprocess_ms",
        "predict_ms",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # drawings come from people drawing, not from a form

    def get_queryset(self, request: HttpRequest):
        # The changelist never needs the image bytes; thumbnails load from image_view.
        return super().get_queryset(request).defer("image")

    def get_urls(self):
        view = self.admin_site.admin_view(self.image_view)
        return [path("<uuid:drawing_id>/image/", view, name="recognizer_drawing_image"), *super().get_urls()]

    def image_view(self, request: HttpRequest, drawing_id) -> HttpResponse:
        """The stored file, with the image type validation found, never the client's claim."""
        drawing = get_object_or_404(Drawing.objects.only("image", "content_type"), pk=drawing_id)
        response = HttpResponse(bytes(drawing.image), content_type=drawing.content_type)
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Disposition"] = f'inline; filename="{drawing_id}"'
        return response

    def save_model(self, request: HttpRequest, obj: Drawing, form, change: bool) -> None:
        if "label" in form.changed_data:
            obj.set_label(obj.label, request.user)
        super().save_model(request, obj, form, change)

    @admin.display(description="drawing")
    def thumbnail(self, obj: Drawing) -> str:
        url = reverse("admin:recognizer_drawing_image", args=[obj.pk])
        return format_html(
            '<img src="{}" alt="drawing {}" width="48" height="48" style="object-fit:contain;'
            'background:#fff;border:1px solid #ccc">',
            url,
            obj.pk,
        )

    @admin.display(description="drawing")
    def picture(self, obj: Drawing) -> str:
        url = reverse("admin:recognizer_drawing_image", args=[obj.pk])
        return format_html(
            '<img src="{}" alt="drawing" style="max-width:280px;background:#fff;border:1px solid #ccc">', url
        )

    @admin.display(description="confidence", ordering="confidence")
    def confidence_percent(self, obj: Drawing) -> str:
        return "" if obj.confidence is None else f"{obj.confidence:.1%}"

    @admin.display(description="latency")
    def latency(self, obj: Drawing) -> str:
        return "" if obj.latency_ms is None else f"{obj.latency_ms:.1f} ms"
