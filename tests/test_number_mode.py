"""Number mode on the web side: the mode sent and stored, the result of both modes, feedback, and the admin."""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from recognizer.api import DrawingOut
from recognizer.models import NOT_A_DIGIT, Drawing
from tests.factories import drawing, ink_drawing
from training import samples

pytestmark = pytest.mark.django_db
SVG = "{http://www.w3.org/2000/svg}"
STROKES = {"strokes": [[[40, 60, 0], [60, 200, 90]], [[150, 60, 300], [200, 60, 350], [160, 200, 500]]]}
TWO_DIGITS = {**STROKES, "width": 560, "height": 280, "pen": 18}


def post_json(client: Client, body: object, query: str = ""):
    return client.post(f"/api/drawings/{query}", data=json.dumps(body), content_type="application/json")


def read(digit: int, confidence: float, box: list[float]) -> dict:
    rest = (1 - confidence) / 9
    probabilities = [confidence if d == digit else rest for d in range(10)]
    return {"digit": digit, "confidence": confidence, "probabilities": probabilities, "box": box}


def number_drawing(**fields) -> Drawing:
    """A strokes drawing the worker read in number mode as 17: two digits, so no `digit` of its own."""
    # Boxes as the worker stores them: floats.
    digits = [read(1, 0.99, [31.0, 51.0, 69.0, 209.0]), read(7, 0.9, [141.0, 51.0, 209.0, 209.0])]
    values = {"mode": "number", "number": "17", "digits": digits, "digit": None, "confidence": 0.891}
    return ink_drawing(TWO_DIGITS, **{**values, **fields})


# ---- the mode, sent and stored ------------------------------------------------------------------


@pytest.mark.parametrize("body", [TWO_DIGITS, {"image": samples.data_url(samples.SEVEN)}])
def test_it_stores_the_mode_a_json_body_names(client, body):
    number = post_json(client, {**body, "mode": "number"})
    digit = post_json(client, body)  # none named: one digit, as before
    assert (number.status_code, digit.status_code) == (202, 202)
    assert Drawing.objects.get(pk=number.json()["id"]).mode == "number"
    assert Drawing.objects.get(pk=digit.json()["id"]).mode == "digit"


def test_it_takes_the_mode_of_an_image_body_from_the_query(client):
    raw = client.post("/api/drawings/?mode=number", data=samples.SEVEN, content_type="image/png")
    form = client.post("/api/drawings/?mode=number", {"image": samples.io.BytesIO(samples.SEVEN)})
    assert (raw.status_code, form.status_code) == (202, 202)
    assert set(Drawing.objects.values_list("mode", flat=True)) == {"number"}


def test_it_takes_the_mode_of_a_form_from_its_field_too(client):
    form = client.post("/api/drawings/", {"image": samples.io.BytesIO(samples.SEVEN), "mode": "number"})
    assert form.status_code == 202 and Drawing.objects.get(pk=form.json()["id"]).mode == "number"
    both = client.post("/api/drawings/?mode=digit", {"image": samples.io.BytesIO(samples.SEVEN), "mode": "number"})
    wrong = client.post("/api/drawings/", {"image": samples.io.BytesIO(samples.SEVEN), "mode": "Number"})
    # A mode sent as a file part was left out, and the drawing read as one digit.
    as_file = client.post(
        "/api/drawings/", {"image": samples.io.BytesIO(samples.SEVEN), "mode": SimpleUploadedFile("mode", b"number")}
    )
    for refused in (both, wrong, as_file):
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_mode"
    assert Drawing.objects.count() == 1
    doc = client.get("/api/openapi.json").json()
    multipart = doc["paths"]["/api/drawings/"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert multipart["schema"]["properties"]["mode"]["enum"] == ["digit", "number"]


def test_a_form_or_a_query_naming_two_modes_is_refused_not_read_in_one(client):
    seven = samples.io.BytesIO
    form = client.post("/api/drawings/", {"image": seven(samples.SEVEN), "mode": ["digit", "number"]})
    query = client.post("/api/drawings/?mode=digit&mode=number", data=samples.SEVEN, content_type="image/png")
    in_json = post_json(client, TWO_DIGITS, "?mode=number&mode=digit")
    for refused in (form, query, in_json):
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_mode"
    assert not Drawing.objects.exists()
    repeated = client.post("/api/drawings/?mode=number", {"image": seven(samples.SEVEN), "mode": ["number"] * 2})
    assert repeated.status_code == 202 and Drawing.objects.get().mode == "number"


@pytest.mark.parametrize("mode", ["Number", "", "digits", None, 2, ["number"], True])
def test_it_refuses_a_mode_that_is_not_one_in_a_body(client, mode):
    response = post_json(client, {**TWO_DIGITS, "mode": mode})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_mode"
    assert '"digit" or "number"' in response.json()["error"]["message"]
    assert not Drawing.objects.exists()


@pytest.mark.parametrize("query", ["?mode=Number", "?mode=", "?mode=1"])
def test_it_refuses_a_mode_that_is_not_one_in_the_query(client, query):
    raw = client.post(f"/api/drawings/{query}", data=samples.SEVEN, content_type="image/png")
    in_json = post_json(client, TWO_DIGITS, query)
    for response in (raw, in_json):
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_mode"
    assert not Drawing.objects.exists()


def test_a_body_and_a_query_must_name_the_same_mode(client):
    refused = post_json(client, {**TWO_DIGITS, "mode": "digit"}, "?mode=number")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_mode"
    agreed = post_json(client, {**TWO_DIGITS, "mode": "number"}, "?mode=number")
    from_query = post_json(client, TWO_DIGITS, "?mode=number")
    assert (agreed.status_code, from_query.status_code) == (202, 202)
    assert list(Drawing.objects.values_list("mode", flat=True)) == ["number", "number"]


def test_the_openapi_document_describes_the_mode_and_a_number_result(client):
    doc = client.get("/api/openapi.json").json()
    create = doc["paths"]["/api/drawings/"]["post"]
    [query] = [p for p in create["parameters"] if p["name"] == "mode"]
    assert query["in"] == "query" and query["schema"]["enum"] == ["digit", "number"]
    for body in create["requestBody"]["content"]["application/json"]["schema"]["oneOf"]:
        assert body["properties"]["mode"]["enum"] == ["digit", "number"]
    result = doc["components"]["schemas"]["DrawingOut"]
    assert {"mode", "number", "digits"} <= set(result["required"])
    assert doc["components"]["schemas"]["DigitOut"]["properties"]["box"]["minItems"] == 4
    feedback = doc["components"]["schemas"]["FeedbackIn"]
    assert feedback["oneOf"] == [{"required": ["label"]}, {"required": ["number"]}]
    assert feedback["properties"]["number"]["pattern"] == "^[0-9]{1,32}$"


# ---- the result, in both modes ------------------------------------------------------------------


def test_a_digit_drawing_reads_as_a_one_digit_number_boxed_by_the_whole_drawing(client):
    seven = drawing(digit=7, confidence=0.98)
    body = client.get(f"/api/drawings/{seven.pk}/").json()
    assert (body["mode"], body["digit"], body["number"]) == ("digit", 7, "7")
    assert body["digits"] == [
        {"digit": 7, "confidence": 0.98, "probabilities": seven.probabilities, "box": [0, 0, 280, 280]}
    ]
    DrawingOut.model_validate(body)


def test_a_pushed_result_reads_as_the_http_api_answers_it(client):
    # A client that reads both (a push it missed, asked for over HTTP) sees the same text.
    for stored in (drawing(digit=7), number_drawing()):
        pushed = json.dumps(json.loads(json.dumps(stored.result())), sort_keys=True)
        answered = json.dumps(client.get(f"/api/drawings/{stored.pk}/").json(), sort_keys=True)
        assert pushed == answered
        assert stored.result()["created_at"].endswith("Z")


@pytest.mark.parametrize("status", ["queued", "blank", "failed"])
def test_a_drawing_not_read_has_no_number(status):
    result = drawing(digit=None, confidence=None, status=status).result()
    assert result["number"] is None and result["digits"] is None


def test_a_number_drawing_reads_as_the_worker_stored_it(client):
    stored = number_drawing()
    body = client.get(f"/api/drawings/{stored.pk}/").json()
    assert (body["mode"], body["number"], body["digit"], body["probabilities"]) == ("number", "17", None, None)
    assert body["confidence"] == 0.891 and body["digits"] == stored.digits
    assert [entry["box"] for entry in body["digits"]] == [[31, 51, 69, 209], [141, 51, 209, 209]]
    DrawingOut.model_validate(body)


# ---- feedback -------------------------------------------------------------------------------------


def feedback(client: Client, drawing_id, body: object):
    return client.post(f"/api/drawings/{drawing_id}/feedback/", json.dumps(body), content_type="application/json")


def test_it_records_a_number_as_feedback_and_a_later_digit_replaces_it(client):
    stored = number_drawing()
    response = feedback(client, stored.pk, {"number": "19"})
    assert response.status_code == 200
    assert response.json() == {"id": str(stored.pk), "feedback_label": None, "feedback_number": "19"}
    stored.refresh_from_db()
    assert (stored.feedback_number, stored.feedback_label, stored.feedback_count) == ("19", None, 1)
    assert feedback(client, stored.pk, {"label": 4}).status_code == 200
    stored.refresh_from_db()
    assert (stored.feedback_number, stored.feedback_label, stored.feedback_count) == (None, 4, 2)


@pytest.mark.parametrize(
    "body",
    [{"number": "2o48"}, {"number": ""}, {"number": 2048}, {"number": None}, {"number": "1" * 33},
     {"number": " 17"}, {"number": "17\n"}, {"number": "١٧"}, {"label": 3, "number": "3"}, {}, {"label": None}],
)  # fmt: skip
def test_it_refuses_feedback_that_is_not_one_digit_or_one_number(client, body):
    stored = number_drawing()
    response = feedback(client, stored.pk, body)
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["message"]
    stored.refresh_from_db()
    assert stored.feedback_number is None and stored.feedback_label is None and stored.feedback_count == 0


# ---- the admin: boxes, the number read, corrections -------------------------------------------------


def drawn_svgs(html: str) -> list[ElementTree.Element]:
    return [ElementTree.fromstring(match) for match in re.findall(r'<svg [^>]*"digits-strokes.*?</svg>', html, re.S)]


def boxes_of(picture: ElementTree.Element) -> list[tuple[str, ...]]:
    group = picture.find(f".//{SVG}g[@class='digits-boxes']")
    rects = [(r.get("x"), r.get("y"), r.get("width"), r.get("height")) for r in group.iter(f"{SVG}rect")]
    return rects + [(text.text,) for text in group.iter(f"{SVG}text")]


def test_the_change_page_draws_a_number_drawings_boxes_over_its_strokes(admin_client):
    stored = number_drawing()
    page = admin_client.get(f"/admin/recognizer/drawing/{stored.pk}/change/").content.decode()
    [picture] = drawn_svgs(page)
    assert picture.get("viewBox") == "0 0 560 280" and "digits-number" in picture.get("class")
    assert len(picture.findall(f".//{SVG}path")) == 2  # the strokes, under the boxes
    assert boxes_of(picture) == [("31", "51", "38", "158"), ("141", "51", "68", "158"), ("1 99%",), ("7 90%",)]
    assert re.search(r"<b>1</b>99\.0%</span>.*<b>7</b>90\.0%</span>", page, re.S)  # the digits read


def test_the_change_page_draws_a_number_drawings_boxes_over_its_image(admin_client):
    stored = drawing(digit=None, mode="number", number="7", digits=[read(7, 0.97, [60, 40, 220, 250])])
    page = admin_client.get(f"/admin/recognizer/drawing/{stored.pk}/change/").content.decode()
    [picture] = drawn_svgs(page)
    image = picture.find(f"{SVG}image")
    assert image.get("href") == f"/admin/recognizer/drawing/{stored.pk}/image/"
    assert boxes_of(picture) == [("60", "40", "160", "210"), ("7 97%",)]


def test_stored_digits_that_are_not_digits_draw_no_box(admin_client):
    hostile = [{"digit": "<script>", "box": [0, 0, 1, 1]}, {"digit": 3, "box": ["1", 0, 1, 1]}, "x", {"digit": 12}]
    short, unknown = read(2, 0.5, [1, 2, 3]), read(5, 0.5, [1, 2, 3, None])
    stored = number_drawing(digits=[*hostile, short, unknown, read(4, 0.5, [1, 2, 3, 4])])
    page = admin_client.get(f"/admin/recognizer/drawing/{stored.pk}/change/").content.decode()
    [picture] = drawn_svgs(page)
    assert boxes_of(picture) == [("1", "2", "2", "2"), ("4 50%",)] and "<script>" not in page


def test_the_list_filters_by_mode_and_shows_the_number(admin_client):
    number, digit = number_drawing(), drawing()
    page = admin_client.get("/admin/recognizer/drawing/?mode__exact=number")
    assert [str(d.pk) for d in page.context["cl"].result_list] == [str(number.pk)]
    assert re.search(r'<td class="field-read"><a [^>]+>17</a></td>', page.content.decode())
    assert str(digit.pk) in admin_client.get("/admin/recognizer/drawing/?mode__exact=digit").content.decode()


def test_staff_correct_a_number_on_the_change_page(admin_client, admin_user):
    stored = number_drawing()
    response = admin_client.post(f"/admin/recognizer/drawing/{stored.pk}/change/", {"label": "", "label_number": "19"})
    assert response.status_code == 302
    stored.refresh_from_db()
    assert (stored.label_number, stored.label, stored.labeled_by) == ("19", None, admin_user)
    refused = admin_client.post(f"/admin/recognizer/drawing/{stored.pk}/change/", {"label": "", "label_number": "1x"})
    assert refused.status_code == 200 and "digits, 0 to 9" in refused.content.decode()
    stored.refresh_from_db()
    assert stored.label_number == "19"


@pytest.mark.parametrize(
    ("mode", "form"),
    [("digit", {"label": "", "label_number": "42"}), ("digit", {"label": 7, "label_number": "7"}),
     ("number", {"label": 4, "label_number": "42"}), ("number", {"label": 4, "label_number": ""})],
)  # fmt: skip
def test_the_change_page_refuses_a_label_that_does_not_fit_the_drawing(admin_client, mode, form):
    # Export reads a digit drawing's label and a number drawing's digits: any other pair trained wrong
    # (a number drawing labeled 4 was exported as its whole ink, squeezed into one digit, labeled 4).
    stored = number_drawing() if mode == "number" else drawing()
    refused = admin_client.post(f"/admin/recognizer/drawing/{stored.pk}/change/", form)
    assert refused.status_code == 200 and "errornote" in refused.content.decode()
    stored.refresh_from_db()
    assert (stored.label, stored.label_number, stored.labeled_by) == (None, None, None)


REVIEW = "/admin/recognizer/drawing/review/"


def test_the_review_page_offers_the_number_read_to_correct(admin_client):
    stored = number_drawing()
    page = admin_client.get(REVIEW)
    assert page.context["drawing"] == stored
    html = page.content.decode()
    assert re.search(r'<input type="text" name="number" id="number" value="17"', html)
    assert 'pattern="[0-9]{1,32}" maxlength="32"' in html  # checked in the browser before it is sent
    assert 'id="prediction">17</span>' in html and "0.891" in html
    assert len(boxes_of(drawn_svgs(html)[0])) == 4


@pytest.mark.parametrize(
    ("form", "label", "number"),
    [({"label": "number", "number": "19"}, None, "19"), ({"label": "number", "number": " 4 "}, None, "4"),
     ({"label": "confirm"}, None, "17"), ({"label": "1"}, None, "1"), ({"label": "x"}, NOT_A_DIGIT, None)],
)  # fmt: skip
def test_the_review_page_labels_a_number_drawing(admin_client, admin_user, form, label, number):
    stored = number_drawing()
    response = admin_client.post(f"{REVIEW}{stored.pk}/", {**form, "offset": 0})
    assert response.status_code == 302
    stored.refresh_from_db()
    assert (stored.label, stored.label_number, stored.labeled_by) == (label, number, admin_user)
    assert not Drawing.objects.review_queue().exists() and Drawing.objects.reviewed().count() == 1


@pytest.mark.parametrize(("action", "label", "number"), [("label_as_7", None, "7"), ("label_as_10", NOT_A_DIGIT, None)])
def test_a_bulk_label_gives_a_number_drawing_a_number(admin_client, admin_user, action, label, number):
    # "Label as 7" on a number drawing says it is the number 7: a digit label there was exported as
    # the whole drawing squeezed into one 28x28 digit.
    stored, single = number_drawing(), drawing()
    ids = [stored.pk, single.pk]
    response = admin_client.post("/admin/recognizer/drawing/", {"action": action, "_selected_action": ids})
    assert response.status_code == 302
    stored.refresh_from_db()
    single.refresh_from_db()
    assert (stored.label, stored.label_number, stored.labeled_by) == (label, number, admin_user)
    assert (single.label, single.label_number) == (label if number is None else 7, None)


@pytest.mark.parametrize("number", ["", "1x", "1" * 33, "-1"])
def test_the_review_page_refuses_a_number_that_is_not_digits(admin_client, number):
    stored = number_drawing()
    response = admin_client.post(f"{REVIEW}{stored.pk}/", {"label": "number", "number": number, "offset": 0})
    assert response.status_code == 302
    assert "digits, 0 to 9" in admin_client.get(REVIEW).content.decode()  # the message, on the next page
    stored.refresh_from_db()
    assert stored.label_number is None and stored.labeled_by is None


def test_confirming_in_bulk_takes_each_drawings_own_reading(admin_client):
    number, digit = number_drawing(), drawing(digit=3)
    form = {"action": "confirm_prediction", "_selected_action": [number.pk, digit.pk]}
    admin_client.post("/admin/recognizer/drawing/", form)
    number.refresh_from_db(), digit.refresh_from_db()
    assert (number.label, number.label_number) == (None, "17") and (digit.label, digit.label_number) == (3, None)


def test_the_quality_page_counts_numbers_read_whole(admin_client, admin_user):
    number_drawing(label_number="17", labeled_by=admin_user)
    number_drawing(label_number="19", labeled_by=admin_user)
    drawing(digit=7, label=7, labeled_by=admin_user)
    page = admin_client.get("/admin/recognizer/drawing/quality/")
    assert page.context["numbers"] == {"total": 2, "right": 1} and page.context["reviewed"] == 3
    assert "1 of 2 reviewed number drawings" in page.content.decode()
    assert sum(map(sum, page.context["matrix"])) == 1  # the digit drawing alone


def test_the_feedback_filter_compares_numbers_with_numbers(admin_client):
    agrees = number_drawing(feedback_number="17")
    disagrees = number_drawing(feedback_number="19")
    for value, expected in (("agrees", agrees), ("disagrees", disagrees)):
        page = admin_client.get(f"/admin/recognizer/drawing/?feedback={value}")
        assert [d.pk for d in page.context["cl"].result_list] == [expected.pk]


def test_a_one_digit_number_said_of_a_digit_drawing_is_its_label(client):
    seven = drawing(digit=7)
    response = feedback(client, seven.pk, {"number": "1"})
    assert response.json() == {"id": str(seven.pk), "feedback_label": 1, "feedback_number": None}
    seven.refresh_from_db()
    assert (seven.feedback_label, seven.feedback_number) == (1, None)


def test_a_longer_number_said_of_a_digit_drawing_is_kept_as_a_number_it_disagrees_with(client, admin_client):
    seven = drawing(digit=7)
    response = feedback(client, seven.pk, {"number": "12"})  # a number drawn in digit mode
    assert response.json() == {"id": str(seven.pk), "feedback_label": None, "feedback_number": "12"}
    listed = admin_client.get("/admin/recognizer/drawing/?feedback=disagrees").context["cl"].result_list
    assert [d.pk for d in listed] == [seven.pk]


def test_the_review_page_refuses_a_number_for_a_digit_drawing(admin_client):
    seven = drawing()
    response = admin_client.post(f"{REVIEW}{seven.pk}/", {"label": "number", "number": "42", "offset": 0})
    assert response.status_code == 302
    assert "give it a label" in admin_client.get(REVIEW).content.decode()
    seven.refresh_from_db()
    assert seven.label_number is None and seven.labeled_by is None
