"""Reviewing and relabeling in the admin: the queue, filters, bulk labels, review and quality pages."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.utils import timezone

from recognizer.model_files import read_metadata, shipped_path
from recognizer.models import NOT_A_DIGIT, Drawing, ModelVersion
from recognizer.review import live_version
from tests.factories import drawing, reviewer
from training.samples import ONE

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/recognizer/drawing/"
REVIEW = "/admin/recognizer/drawing/review/"


def listed(response) -> list[str]:
    return [str(obj.pk) for obj in response.context["cl"].result_list]


def test_it_lists_the_review_queue_first_least_confident_first(admin_client, admin_user):
    sure, unsure, reviewed = drawing(confidence=0.99), drawing(confidence=0.4), drawing(confidence=0.1)
    reviewed.set_label(7, admin_user)
    reviewed.save()
    assert listed(admin_client.get(CHANGELIST)) == [str(unsure.pk), str(sure.pk), str(reviewed.pk)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("reviewed=no", {"unsure", "sure", "disagreed"}),
        ("reviewed=yes", {"labeled"}),
        ("confidence=low", {"unsure"}),
        ("confidence=sure", {"sure", "labeled"}),
        ("feedback=disagrees", {"disagreed"}),
        ("digit=1", {"disagreed"}),
        ("label=3", {"labeled"}),
        ("model_version=old", {"sure"}),
    ],
)
def test_it_filters_drawings(admin_client, admin_user, query, expected):
    made = {
        "sure": drawing(confidence=0.995, model_version="old"),
        "unsure": drawing(confidence=0.3),
        "disagreed": drawing(digit=1, confidence=0.7, feedback_label=7),
        "labeled": drawing(confidence=0.999, label=3, labeled_by=admin_user),
    }
    names = {str(obj.pk): name for name, obj in made.items()}
    response = admin_client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    assert {names[pk] for pk in listed(response)} == expected


def test_it_confirms_predictions_as_labels_in_bulk(admin_client, admin_user):
    seven, blank = drawing(), drawing(digit=None, confidence=None)
    form = {"action": "confirm_prediction", "_selected_action": [seven.pk, blank.pk]}
    response = admin_client.post(CHANGELIST, form, follow=True)
    [message] = [m.message for m in response.context["messages"]]
    assert message == "1 prediction(s) confirmed as labels; 1 had none to confirm (blank, failed or not read yet)."
    seven.refresh_from_db()
    blank.refresh_from_db()
    assert (seven.label, seven.labeled_by, blank.label) == (7, admin_user, None)


@pytest.mark.parametrize(("action", "label"), [("label_as_3", 3), ("label_as_10", NOT_A_DIGIT)])
def test_it_relabels_in_bulk(admin_client, action, label):
    made = [drawing(), drawing()]
    admin_client.post(CHANGELIST, {"action": action, "_selected_action": [obj.pk for obj in made]})
    assert set(Drawing.objects.values_list("label", flat=True)) == {label}


def test_it_shows_the_drawing_its_model_input_and_bars(admin_client):
    obj = drawing()
    page = admin_client.get(f"{CHANGELIST}{obj.pk}/change/").content.decode()
    assert f"{obj.pk}/image/" in page and f"{obj.pk}/input/" in page and page.count("digits-bar") >= 10
    model_input = admin_client.get(f"{CHANGELIST}{obj.pk}/input/")
    assert model_input["Content-Type"] == "image/png" and model_input.content.startswith(b"\x89PNG")


def test_a_drawing_whose_label_was_cleared_is_unreviewed_everywhere(admin_client, admin_user):
    cleared, reviewed = drawing(confidence=0.2), drawing(confidence=0.1)
    reviewed.label_as(3, admin_user)
    cleared.label_as(5, admin_user)
    admin_client.post(f"{CHANGELIST}{cleared.pk}/change/", {"label": ""})  # staff clear the label
    cleared.refresh_from_db()
    assert (cleared.label, cleared.labeled_by, cleared.labeled_at) == (None, None, None)
    assert listed(admin_client.get(f"{CHANGELIST}?reviewed=no")) == [str(cleared.pk)]
    assert listed(admin_client.get(CHANGELIST)) == [str(cleared.pk), str(reviewed.pk)]  # unreviewed first
    assert admin_client.get(REVIEW).context["drawing"] == cleared


def test_it_keeps_prediction_fields_read_only(admin_client):
    obj = drawing()
    admin_client.post(f"{CHANGELIST}{obj.pk}/change/", {"label": 1, "digit": 3, "confidence": 0.1})
    obj.refresh_from_db()
    assert (obj.label, obj.digit, obj.confidence) == (1, 7, 0.98)


def test_the_review_page_walks_the_queue_by_keyboard_choices(admin_client):
    unsure, sure = drawing(digit=1, confidence=0.5, image=ONE), drawing(confidence=0.9)
    page = admin_client.get(REVIEW)
    assert page.context["drawing"] == unsure and page.context["left"] == 2
    assert b"review.js" in page.content
    assert admin_client.get(REVIEW + "?offset=1").context["drawing"] == sure  # the right arrow
    response = admin_client.post(f"{REVIEW}{unsure.pk}/", {"label": "confirm", "offset": 0})  # Enter
    assert response.status_code == 302 and response["Location"].endswith("?offset=0")
    assert admin_client.get(REVIEW).context["drawing"] == sure  # the next one moved up
    admin_client.post(f"{REVIEW}{sure.pk}/", {"label": "x", "offset": 0})  # X
    assert Drawing.objects.get(pk=unsure.pk).label == 1 and Drawing.objects.get(pk=sure.pk).label == NOT_A_DIGIT
    assert b"Nothing left to review" in admin_client.get(REVIEW).content


def test_labels_from_bulk_actions_and_the_review_page_are_in_each_drawings_history(admin_client):
    # The change page's edits left a History entry; labels set by the faster ways left none.
    seven, blank, four = drawing(), drawing(digit=None, confidence=None), drawing(digit=4)
    unreviewed = f"{CHANGELIST}?reviewed=no"  # a list filtered on what the label changes
    admin_client.post(unreviewed, {"action": "confirm_prediction", "_selected_action": [seven.pk, blank.pk]})
    admin_client.post(unreviewed, {"action": "label_as_10", "_selected_action": [blank.pk]})
    admin_client.post(f"{REVIEW}{four.pk}/", {"label": "9", "offset": 0})
    history = {(e.object_id, e.change_message) for e in LogEntry.objects.all()}
    assert history == {
        (str(seven.pk), "Confirmed the prediction as the label (bulk action)"),
        (str(blank.pk), "Label as not a digit (bulk action)"),
        (str(four.pk), "Labeled 9 on the review page"),
    }
    assert admin_client.get(f"{REVIEW}{four.pk}/").status_code == 405  # a label is only posted


def test_shares_read_as_percentages_and_unread_drawings_have_a_name_in_the_filter(admin_client, admin_user):
    ModelVersion.objects.create(version="cnn-x", artifact=b"-", mnist_accuracy=0.9888888888888889)
    assert "98.89 %" in admin_client.get("/admin/recognizer/modelversion/").text
    for digit, label in [(7, 7), (7, 7), (1, 7)]:
        drawing(digit=digit, label=label, labeled_by=admin_user, model_version=live_version())
    assert "66.67 % right on 3 reviewed drawings" in admin_client.get("/admin/recognizer/drawing/quality/").text
    drawing(digit=None, confidence=None, model_version="")
    assert "none (no model read it)" in admin_client.get(CHANGELIST).text


def test_the_review_page_says_a_blank_drawing_has_no_prediction_to_confirm(admin_client):
    # Enter did nothing on it, and the keys' line said Enter confirms the prediction.
    blank = drawing(digit=None, confidence=None, status="blank")
    page = admin_client.get(REVIEW).content.decode()
    assert admin_client.get(REVIEW).context["drawing"] == blank
    assert "no prediction to confirm" in page and "confirm the prediction" not in page
    blank.delete()
    drawing()
    assert "confirm the prediction" in admin_client.get(REVIEW).content.decode()


@pytest.mark.parametrize("offset", ["abc", "1.5", "9" * 5000, "-3", ""])
def test_the_review_page_starts_at_the_first_drawing_for_an_offset_that_is_no_place(admin_client, offset):
    first = drawing()
    page = admin_client.get(REVIEW, {"offset": offset})
    assert page.status_code == 200 and page.context["drawing"] == first
    labeled = admin_client.post(f"{REVIEW}{first.pk}/", {"label": "1", "offset": offset})
    assert labeled.status_code == 302 and labeled["Location"].endswith("?offset=0")


def test_the_review_page_refuses_labels_that_are_not_labels(admin_client):
    obj = drawing()
    admin_client.post(f"{REVIEW}{obj.pk}/", {"label": "11", "offset": 0})
    assert Drawing.objects.get(pk=obj.pk).label is None


def test_the_quality_page_shows_accuracy_confusion_and_volume(admin_client, admin_user):
    for digit, label in [(7, 7), (7, 7), (1, 7), (3, 3)]:
        drawing(digit=digit, label=label, labeled_by=admin_user, model_version=live_version())
    page = admin_client.get("/admin/recognizer/drawing/quality/")
    assert page.status_code == 200
    assert page.context["live"]["accuracy"] == 0.75 and page.context["live"]["total"] == 4
    assert page.context["matrix"][7][1] == 1 and page.context["matrix"][7][7] == 2
    assert sum(row["n"] for row in page.context["per_day"]) == 4
    # Each day's count as text, not only a bar's height in a title no keyboard reaches.
    per_day = page.content.decode().split('id="per-day"')[1]
    assert "<td>4</td>" in per_day.split("</table>")[0]


def test_a_reviewer_can_label_but_not_delete(client):
    client.force_login(reviewer())
    obj = drawing()
    assert client.get(CHANGELIST).status_code == 200
    assert client.get(REVIEW).status_code == 200
    client.post(f"{REVIEW}{obj.pk}/", {"label": "2", "offset": 0})
    assert Drawing.objects.get(pk=obj.pk).label == 2
    assert client.post(f"{CHANGELIST}{obj.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"})
    assert Drawing.objects.filter(pk=obj.pk).exists()


def test_staff_without_the_label_permission_cannot_label(client):
    client.force_login(User.objects.create_user("viewer", password="pw", is_staff=True))
    obj = drawing()
    assert client.get(REVIEW).status_code == 403
    assert client.post(f"{REVIEW}{obj.pk}/", {"label": "2", "offset": 0}).status_code == 403
    assert Drawing.objects.get(pk=obj.pk).label is None


def test_a_user_who_is_not_staff_gets_nothing(client):
    client.force_login(User.objects.create_user("someone", password="pw"))
    obj = drawing()
    for url in (CHANGELIST, REVIEW, "/admin/recognizer/drawing/quality/", f"{CHANGELIST}{obj.pk}/image/"):
        assert client.get(url).status_code == 302  # to the admin login


def test_an_admin_activates_and_rolls_back_model_versions(admin_client, admin_user):
    # Marked as checked here; the check itself, with TensorFlow, is in test_activation.
    first = ModelVersion.objects.create(version="cnn-a", artifact=b"a", is_active=True, verified_at=timezone.now())
    second = ModelVersion.objects.create(version="cnn-b", artifact=b"b", verified_at=timezone.now())
    url = "/admin/recognizer/modelversion/"
    admin_client.post(url, {"action": "activate", "_selected_action": [second.pk]})
    assert ModelVersion.active() == second and ModelVersion.active().activated_by == admin_user
    admin_client.post(url, {"action": "activate", "_selected_action": [first.pk]})  # roll back
    assert ModelVersion.active() == first and ModelVersion.objects.filter(is_active=True).count() == 1


def test_a_version_never_checked_cannot_be_activated(admin_client):
    first = ModelVersion.objects.create(version="cnn-a", artifact=b"a", is_active=True, verified_at=timezone.now())
    unchecked = ModelVersion.objects.create(version="cnn-unchecked", artifact=b"b")
    response = admin_client.post(
        "/admin/recognizer/modelversion/", {"action": "activate", "_selected_action": [unchecked.pk]}, follow=True
    )
    [(level, message)] = [(m.level_tag, m.message) for m in response.context["messages"]]
    assert level == "error" and "never checked" in message and "manage.py verify_models cnn-unchecked" in message
    assert ModelVersion.active() == first
    with pytest.raises(ModelVersion.NotVerified):
        unchecked.activate()


def test_a_reviewer_cannot_activate_model_versions(client):
    client.force_login(reviewer())
    assert client.get("/admin/recognizer/modelversion/").status_code == 403


def test_the_review_page_draws_a_stroke_drawing_as_svg_with_a_replay(admin_client):
    strokes = [[[84, 70, 0], [196, 70, 120], [126, 224, 260]], [[100, 150, 900], [170, 150, 1010]]]
    drawing(image=b"", content_type="", strokes=strokes, pen=16.8, confidence=0.5)
    page = admin_client.get(REVIEW).content.decode()
    [picture] = re.findall(r'<svg [^>]*class="digits-strokes digits-picture".*?</svg>', page, re.S)
    assert 'viewBox="0 0 280 280"' in picture and 'stroke-width="16.8"' in picture
    assert picture.count("<path ") == 2 and picture.count("<text ") == 2  # one path and one number per stroke
    assert "Replay the strokes" in page and "recognizer/strokes.js" in page
    assert "/image/" not in page


def test_the_review_page_still_shows_an_image_drawing_as_its_image(admin_client):
    obj = drawing(confidence=0.5)
    page = admin_client.get(REVIEW).content.decode()
    assert f'<img src="/admin/recognizer/drawing/{obj.pk}/image/"' in page
    assert "digits-strokes" not in page and "Replay the strokes" not in page


def test_the_versions_list_says_which_model_serves_when_none_of_its_versions_does(admin_client):
    url = "/admin/recognizer/modelversion/"
    shipped = read_metadata(shipped_path())["version"]
    page = admin_client.get(url).content.decode()
    assert f"workers read with the shipped model, {shipped}." in page and "manage.py retrain" in page
    ModelVersion.objects.create(version="cnn-a", artifact=b"a", is_active=True, verified_at=timezone.now())
    assert shipped not in admin_client.get(url).content.decode()
