"""Reviewing and relabeling drawings, and choosing the model version, in the Django admin."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.views.main import ORDER_VAR, ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from recognizer import review, svg
from recognizer.models import (
    INPUT_FIELDS,
    NOT_A_DIGIT,
    NUMBER_MAX_DIGITS,
    REVIEW_ORDER,
    Drawing,
    DrawingQuerySet,
    ModelVersion,
)

LABEL_PERMISSION = "recognizer.label_drawing"


class ModelVersionFilter(admin.AllValuesFieldListFilter):
    """The versions drawings were read with, and a name for the drawings none read (blank, failed,
    queued), whose entry was an empty line."""

    def choices(self, changelist):
        for choice in super().choices(changelist):
            yield {**choice, "display": choice["display"] or "none (no model read it)"}


class ReviewedFilter(admin.SimpleListFilter):
    title, parameter_name = "reviewed", "reviewed"

    def lookups(self, request, model_admin):
        return (("no", "not yet"), ("yes", "reviewed"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.reviewed()
        if self.value() == "no":
            return queryset.unreviewed()
        return queryset


class ConfidenceFilter(admin.SimpleListFilter):
    title, parameter_name = "confidence", "confidence"
    BANDS = {"low": (0, 0.5), "medium": (0.5, 0.9), "high": (0.9, 0.99), "sure": (0.99, 1.01)}

    def lookups(self, request, model_admin):
        return (("low", "under 50 %"), ("medium", "50–90 %"), ("high", "90–99 %"), ("sure", "99 % and over"))

    def queryset(self, request, queryset):
        if self.value() in self.BANDS:
            low, high = self.BANDS[self.value()]
            return queryset.filter(confidence__gte=low, confidence__lt=high)
        return queryset


class FeedbackDisagreesFilter(admin.SimpleListFilter):
    title, parameter_name = "person's feedback", "feedback"

    def lookups(self, request, model_admin):
        return (("disagrees", "disagrees with the prediction"), ("agrees", "agrees"))

    def queryset(self, request, queryset):
        # A digit said against the digit read, or (number mode) a number said against the number read.
        if self.value() == "disagrees":
            digit = Q(feedback_label__isnull=False) & (~Q(feedback_label=F("digit")) | Q(digit__isnull=True))
            number = Q(feedback_number__isnull=False) & (~Q(feedback_number=F("number")) | Q(number__isnull=True))
            return queryset.filter(digit | number)
        if self.value() == "agrees":
            return queryset.filter(Q(feedback_label=F("digit")) | Q(feedback_number=F("number")))
        return queryset


def queue_place(text: str) -> int:
    """The review page's place in its queue from its URL: 0 unless the text is a whole number (an edited URL)."""
    try:
        return max(int(text), 0)
    except ValueError:
        return 0


def label_action(label: int, description: str):
    @admin.action(description=description, permissions=["label"])
    def action(modeladmin: DrawingAdmin, request: HttpRequest, queryset: DrawingQuerySet) -> None:
        modeladmin.log_labels(request, queryset, f"{description} (bulk action)")
        count = queryset.label(label, request.user)
        modeladmin.message_user(request, f"{count} drawing(s) labeled {description.removeprefix('Label as ')}.")

    action.__name__ = f"label_as_{label}"
    return action


class ReviewOrderChangeList(ChangeList):
    """The drawings list, whose own order (`DrawingAdmin.get_ordering`) is no column's: Django marked
    the headers from the model's order (newest first), which the rows were not in. Marked only when
    a header was clicked."""

    def get_ordering_field_columns(self) -> dict[int, str]:
        return super().get_ordering_field_columns() if ORDER_VAR in self.params else {}


@admin.register(Drawing)
class DrawingAdmin(admin.ModelAdmin):
    # One column for what was read and one for the staff label, in either mode: a column per mode's
    # field pushed latency and time off a 1400 px screen.
    list_display = (
        "thumbnail", "read", "confidence_percent", "feedback", "staff_label", "status", "model_version", "latency",
        "created",
    )  # fmt: skip
    list_display_links = ("thumbnail", "read")
    list_filter = (
        ReviewedFilter, "mode", "status", "digit", "label", ConfidenceFilter, FeedbackDisagreesFilter,
        ("model_version", ModelVersionFilter), "source", "created_at",
    )  # fmt: skip
    search_fields = ("=id",)
    search_help_text = "A drawing's whole id, as the API and the page's websocket give it."
    date_hierarchy = "created_at"
    list_per_page = 50
    actions = [
        "confirm_prediction",
        label_action(NOT_A_DIGIT, "Label as not a digit"),
        *(label_action(digit, f"Label as {digit}") for digit in range(10)),
    ]
    fields = (
        ("picture", "model_input"),
        "probability_bars",
        ("status", "error"),
        ("mode", "number", "digits_read"),
        ("digit", "confidence", "model_version"),
        ("feedback_label", "feedback_number", "feedback_at"),
        ("label", "label_number", "labeled_by", "labeled_at"),
        ("source", "content_type", "width", "height", "pen"),
        ("created_at", "started_at", "finished_at"),
        ("preprocess_ms", "predict_ms"),
    )
    # Everything but the staff label (a digit, or a number's digits) is a record of what happened.
    readonly_fields = (
        "picture", "model_input", "probability_bars", "status", "error", "mode", "number", "digits_read", "digit",
        "confidence", "model_version", "feedback_label", "feedback_number", "feedback_at", "labeled_by", "labeled_at",
        "source", "content_type", "width", "height", "pen", "created_at", "started_at", "finished_at", "preprocess_ms",
        "predict_ms",
    )  # fmt: skip

    def get_fields(self, request: HttpRequest, obj: Drawing | None = None):
        if obj is None or obj.mode == Drawing.Mode.NUMBER:
            return self.fields
        # A digit drawing's one digit is its "digit": an empty number and digits beside it read as
        # if nothing had been read, where the API says the number is that digit.
        return tuple(("mode",) if row == ("mode", "number", "digits_read") else row for row in self.fields)

    def get_ordering(self, request: HttpRequest):
        # Unreviewed first (a NULL label), each part in the review queue's order.
        return (F("label").asc(nulls_first=True), *REVIEW_ORDER)

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[ChangeList]:
        return ReviewOrderChangeList

    def get_queryset(self, request: HttpRequest):
        # The changelist never needs the image bytes; thumbnails load from image_view.
        return super().get_queryset(request).defer("image")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # drawings come from people drawing, not from a form

    def has_label_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(LABEL_PERMISSION)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        # The only editable field is the label: labeling is what a change is.
        return super().has_change_permission(request, obj) or self.has_label_permission(request)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<uuid:drawing_id>/image/", wrap(self.image_view), name="recognizer_drawing_image"),
            path("<uuid:drawing_id>/input/", wrap(self.input_view), name="recognizer_drawing_input"),
            path("review/", wrap(self.review_view), name="recognizer_drawing_review"),
            path("review/<uuid:drawing_id>/", wrap(self.label_view), name="recognizer_drawing_label"),
            path("quality/", wrap(self.quality_view), name="recognizer_drawing_quality"),
            *super().get_urls(),
        ]

    def image_view(self, request: HttpRequest, drawing_id) -> HttpResponse:
        """The stored file, with the image type validation found, never the client's claim.

        A stroke drawing has no file: it is served as the SVG the admin pages show inline.
        """
        self.require(request, self.has_view_permission(request))
        fields = ("image", "content_type", "strokes", "width", "height", "pen")
        drawing = get_object_or_404(Drawing.objects.only(*fields), pk=drawing_id)
        if drawing.strokes is not None:
            return self.image_response(svg.drawing_svg(drawing).encode(), "image/svg+xml")
        return self.image_response(bytes(drawing.image), drawing.content_type)

    def input_view(self, request: HttpRequest, drawing_id) -> HttpResponse:
        """The 28x28 image the model saw."""
        self.require(request, self.has_view_permission(request))
        png = review.model_input_png(get_object_or_404(Drawing.objects.only(*INPUT_FIELDS), pk=drawing_id))
        if png is None:
            raise Http404("this drawing has no model input (blank or unreadable)")
        return self.image_response(png, "image/png")

    def review_view(self, request: HttpRequest) -> HttpResponse:
        """One drawing at a time from the queue, labeled from the keyboard."""
        self.require(request, self.has_label_permission(request))
        queue = Drawing.objects.review_queue()
        left = queue.count()
        offset = min(queue_place(request.GET.get("offset", "")), max(left - 1, 0))
        drawing = queue[offset] if left else None
        today = timezone.localdate()
        context = {
            **self.admin_site.each_context(request),
            "title": "Review drawings",
            "opts": self.model._meta,
            "drawing": drawing,
            "offset": offset,
            "left": left,
            "reviewed_today": Drawing.objects.filter(labeled_at__date=today).count(),
            "bars": self.probability_bars(drawing) if drawing else "",
            "picture": self.picture(drawing) if drawing else "",
            "digits_read": self.digits_read(drawing) if drawing else "",
            "digits": range(10),
            "number_max_digits": NUMBER_MAX_DIGITS,
        }
        return TemplateResponse(request, "admin/recognizer/drawing/review.html", context)

    def label_view(self, request: HttpRequest, drawing_id) -> HttpResponse:
        """Label one drawing from the review page: 0-9, "confirm" (the prediction), "x" (not a digit), or
        "number" with the corrected digits in `number` (a number drawing)."""
        self.require(request, self.has_label_permission(request))
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        drawing = get_object_or_404(Drawing.objects.defer("image"), pk=drawing_id)
        try:
            label, number = review.chosen_label(drawing, request.POST)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            drawing.label_as(label, request.user, number)
            said = number if number is not None else drawing.get_label_display()
            self.log_change(request, drawing, f"Labeled {said} on the review page")
        offset = queue_place(request.POST.get("offset", ""))
        return HttpResponseRedirect(f"{reverse('admin:recognizer_drawing_review')}?offset={offset}")

    def quality_view(self, request: HttpRequest) -> HttpResponse:
        self.require(request, self.has_view_permission(request))
        context = {
            **self.admin_site.each_context(request),
            "title": "Model quality",
            "opts": self.model._meta,
            **review.quality(),
            "digits": range(10),
        }
        return TemplateResponse(request, "admin/recognizer/drawing/quality.html", context)

    @staticmethod
    def require(request: HttpRequest, allowed: bool) -> None:
        if not allowed:
            raise PermissionDenied

    @staticmethod
    def image_response(data: bytes, content_type: str) -> HttpResponse:
        response = HttpResponse(data, content_type=content_type)
        response["X-Content-Type-Options"] = "nosniff"
        # Opened on its own (an SVG in a new tab), a stored file may run nothing and load nothing.
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["Content-Disposition"] = "inline"
        return response

    def save_model(self, request: HttpRequest, obj: Drawing, form, change: bool) -> None:
        if {"label", "label_number"} & set(form.changed_data):
            obj.set_label(obj.label, request.user, obj.label_number)
        super().save_model(request, obj, form, change)

    @staticmethod
    def log_labels(request: HttpRequest, queryset: DrawingQuerySet, message: str) -> None:
        """A History entry for each drawing about to be labeled, as the change page's edits leave one
        (logged first: the queryset may be filtered on what the label changes, e.g. unreviewed)."""
        LogEntry.objects.log_actions(request.user.pk, queryset.only("pk"), CHANGE, message)

    @admin.action(description="Confirm the prediction as the label", permissions=["label"])
    def confirm_prediction(self, request: HttpRequest, queryset: DrawingQuerySet) -> None:
        selected = queryset.count()
        self.log_labels(request, queryset.confirmable(), "Confirmed the prediction as the label (bulk action)")
        count = queryset.confirm(request.user)
        # Blank, failed and still queued drawings have no prediction to confirm: say so, not just "0".
        left = f"; {selected - count} had none to confirm (blank, failed or not read yet)" if count < selected else ""
        self.message_user(request, f"{count} prediction(s) confirmed as labels{left}.")

    @admin.display(description="drawing")
    def thumbnail(self, obj: Drawing) -> str:
        if obj.strokes is not None:  # pen strokes: drawn inline, crisp at any size
            return svg.drawing_svg(obj, css_class="digits-thumb")
        url = reverse("admin:recognizer_drawing_image", args=[obj.pk])
        return format_html('<img src="{}" alt="drawing {}" width="48" height="48" class="digits-thumb">', url, obj.pk)

    @admin.display(description="drawing")
    def picture(self, obj: Drawing) -> str:
        """The drawing on the change and review pages; pen strokes with their order and a replay button;
        a number drawing with the box of each digit read."""
        css_class = "digits-picture digits-number" if obj.mode == Drawing.Mode.NUMBER else "digits-picture"
        if obj.strokes is None and obj.digits:
            url = reverse("admin:recognizer_drawing_image", args=[obj.pk])
            return svg.image_boxes_svg(obj, url, css_class=css_class)
        if obj.strokes is not None:
            return format_html(
                '<span class="digits-drawing">{}<button type="button" class="digits-replay">Replay the strokes</button>'
                "</span>",
                svg.drawing_svg(obj, css_class=css_class, detail=True),
            )
        url = reverse("admin:recognizer_drawing_image", args=[obj.pk])
        return format_html('<img src="{}" alt="the drawing" class="digits-picture">', url)

    @admin.display(description="what the model saw (28×28)")
    def model_input(self, obj: Drawing) -> str:
        # A number's digits were each cut out and read on their own: no one input shows them.
        if obj.status != Drawing.Status.DONE or obj.mode == Drawing.Mode.NUMBER:
            return "—"
        url = reverse("admin:recognizer_drawing_input", args=[obj.pk])
        return format_html('<img src="{}" alt="the 28x28 model input" class="digits-input">', url)

    @admin.display(description="probabilities")
    def probability_bars(self, obj: Drawing) -> str:
        if not obj.probabilities:
            return "—"
        top = max(range(10), key=lambda d: obj.probabilities[d])
        cells = format_html_join(
            "",
            '<span class="digits-bar{}" title="{}: {}"><span style="height:{}%"></span><b>{}</b></span>',
            ((" top" if d == top else "", d, f"{p:.1%}", f"{p * 100:.1f}", d) for d, p in enumerate(obj.probabilities)),
        )
        return format_html('<span class="digits-bars">{}</span>', cells)

    @admin.display(description="digits read")
    def digits_read(self, obj: Drawing) -> str:
        """Each digit of a number drawing, left to right, with its confidence."""
        cells = format_html_join(
            "",
            '<span class="digits-read"><b>{}</b>{}</span>',
            ((digit, "" if sure is None else f"{sure:.1%}") for digit, sure, _ in svg.clean_digits(obj.digits)),
        )
        return cells or "—"

    @admin.display(description="read", ordering="digit")
    def read(self, obj: Drawing) -> str:
        """The digit read, or a number drawing's digits."""
        return obj.number or ("" if obj.digit is None else str(obj.digit))

    @admin.display(description="label", ordering="label")
    def staff_label(self, obj: Drawing) -> str:
        """What staff said: a digit (or not a digit), or a number's digits."""
        return obj.label_number or ("" if obj.label is None else obj.get_label_display())

    @admin.display(description="feedback")
    def feedback(self, obj: Drawing) -> str:
        """What the person said: a digit, or a number's digits."""
        return obj.feedback_number or ("" if obj.feedback_label is None else str(obj.feedback_label))

    @admin.display(description="confidence", ordering="confidence")
    def confidence_percent(self, obj: Drawing) -> str:
        return "" if obj.confidence is None else f"{obj.confidence:.1%}"

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Drawing) -> str:
        # Shorter than the admin's own date and time, which alone was a quarter of the list's width.
        return timezone.localtime(obj.created_at).strftime("%b %d, %H:%M:%S")

    @admin.display(description="latency")
    def latency(self, obj: Drawing) -> str:
        return "" if obj.latency_ms is None else f"{obj.latency_ms:.1f} ms"

    class Media:
        css = {"all": ["recognizer/admin.css"]}
        js = ["recognizer/strokes.js"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "version",
        "is_active",
        "mnist_percent",
        "reviewed_percent",
        "parent",
        "created_at",
        "checked",
        "activated_at",
        "activated_by",
    )
    list_filter = ("is_active",)
    actions = ["activate"]
    exclude = ("artifact", "runtime_artifact")
    readonly_fields = (
        "version", "metadata", "mnist_accuracy", "reviewed_accuracy", "parent", "is_active", "created_at",
        "verified_at", "verification", "activated_at", "activated_by",
    )  # fmt: skip

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).defer("artifact", "runtime_artifact")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions come from `manage.py retrain`

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if not ModelVersion.objects.filter(is_active=True).exists():
            # The list alone looked as if no model were serving. A subtitle, not a message: an
            # action's own message is the one it shows.
            shipped = review.live_version()
            note = f"None of these is active: workers read with the shipped model, {shipped}."
            extra_context = {**(extra_context or {}), "subtitle": note + " `manage.py retrain` adds versions here."}
        return super().changelist_view(request, extra_context)

    @admin.action(description="Activate (or roll back to) this version", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        version = queryset.get()
        if version.is_active:  # activating it again would only move its activation time
            self.message_user(request, f"Version {version} is already active.", messages.INFO)
            return
        try:
            version.activate(request.user)
        except ModelVersion.NotVerified as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        # "Version" first: the admin capitalises a message's first letter, and a version's name is lower case.
        message = f"Version {version} is active; workers read with it from their next drawing."
        self.message_user(request, message, messages.SUCCESS)

    def get_deleted_objects(self, objs, request: HttpRequest) -> tuple:
        """As Django's, with the active version protected: deleting it made workers fall back to the
        shipped model unannounced. Django then refuses the delete and lists why."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        active = [f"{v} is active: activate another version first" for v in objs if v.is_active]
        return deleted, counts, perms_needed, [*protected, *active]

    @admin.display(description="MNIST test", ordering="mnist_accuracy")
    def mnist_percent(self, obj: ModelVersion) -> str:
        return review.percent(obj.mnist_accuracy)

    @admin.display(description="held-out reviewed", ordering="reviewed_accuracy")
    def reviewed_percent(self, obj: ModelVersion) -> str:
        return review.percent(obj.reviewed_accuracy)

    @admin.display(boolean=True, description="checked", ordering="verified_at")
    def checked(self, obj: ModelVersion) -> bool:
        """Loaded back and made to predict when it was registered: only such a version can be activated."""
        return obj.verified_at is not None
