"""The drawing admin opens for staff and shows what was stored."""

import math
import re
from xml.etree import ElementTree

import pytest

from recognizer import svg
from recognizer.models import Drawing
from training import samples

pytestmark = pytest.mark.django_db


@pytest.fixture
def drawing() -> Drawing:
    return Drawing.objects.create(
        image=samples.SEVEN, content_type="image/png", width=280, height=280, source="api", status="done",
        digit=7, confidence=0.98, probabilities=[0.002] * 9 + [0.98], model_version="cnn-test",
    )  # fmt: skip


def test_it_lists_drawings_for_staff(admin_client, drawing):
    response = admin_client.get("/admin/recognizer/drawing/")
    assert response.status_code == 200
    assert f"/admin/recognizer/drawing/{drawing.pk}/image/" in response.content.decode()


def test_the_list_marks_a_column_sorted_only_when_it_is(admin_client, drawing):
    # Its own order (unreviewed first, least sure first) is no column's; a header clicked is.
    sorted_headers = re.compile(r'<th[^>]*class="[^"]*sorted (ascending|descending)')
    assert not sorted_headers.search(admin_client.get("/admin/recognizer/drawing/").content.decode())
    by_created = admin_client.get("/admin/recognizer/drawing/?o=-9").content.decode()
    assert [m.group(1) for m in sorted_headers.finditer(by_created)] == ["descending"]


def test_it_filters_the_list(admin_client, drawing):
    response = admin_client.get("/admin/recognizer/drawing/?status__exact=done&digit=7")
    assert response.status_code == 200 and str(drawing.pk) in response.content.decode()


def test_it_opens_a_drawing_and_serves_its_image_as_stored(admin_client, drawing):
    assert admin_client.get(f"/admin/recognizer/drawing/{drawing.pk}/change/").status_code == 200
    image = admin_client.get(f"/admin/recognizer/drawing/{drawing.pk}/image/")
    assert image["Content-Type"] == "image/png" and image["X-Content-Type-Options"] == "nosniff"
    assert image.content == samples.SEVEN


def test_the_change_page_shows_a_number_s_digits_and_a_digit_drawing_s_digit(admin_client, drawing):
    # A digit drawing showed an empty number and "digits read: —" beside the digit it read.
    assert (
        "digits read"
        not in admin_client.get(f"/admin/recognizer/drawing/{drawing.pk}/change/").content.decode().lower()
    )
    digits = [{"digit": 4, "confidence": 0.9, "probabilities": [0.01] * 4 + [0.91] + [0.01] * 5, "box": [0, 0, 9, 9]}]
    Drawing.objects.filter(pk=drawing.pk).update(mode="number", number="4", digits=digits * 2)
    page = admin_client.get(f"/admin/recognizer/drawing/{drawing.pk}/change/").content.decode()
    assert "digits read" in page.lower() and page.count('class="digits-read"') == 2


def test_it_records_who_labeled_a_drawing(admin_client, admin_user, drawing):
    form = {"label": 1}
    response = admin_client.post(f"/admin/recognizer/drawing/{drawing.pk}/change/", form)
    assert response.status_code == 302
    drawing.refresh_from_db()
    assert drawing.label == 1 and drawing.labeled_by == admin_user and drawing.labeled_at


def test_it_keeps_drawings_from_anonymous_users(client, drawing):
    assert client.get("/admin/recognizer/drawing/").status_code == 302
    assert client.get(f"/admin/recognizer/drawing/{drawing.pk}/image/").status_code == 302


# ---- stroke drawings: inline SVG, stroke order, replay -----------------------------------------

SEVEN_STROKES = [[[84, 70, 0], [196, 70, 120.5], [126, 224, 260]], [[100, 150, 900], [170, 150, 1010]]]
NUMBER = re.compile(r"-?\d+(\.\d+)?")
# Every attribute of every element the SVG builder may write, and the values it may take.
CONSTANTS = {
    "xmlns": {"http://www.w3.org/2000/svg"},
    "role": {"img"},
    "fill": {"none", svg.INK, svg.PAPER, svg.ORDER},
    "stroke": {"none", svg.INK, svg.PAPER},
    "stroke-linecap": {"round"},
    "stroke-linejoin": {"round"},
    "paint-order": {"stroke"},
    "text-anchor": {"middle"},
    "dominant-baseline": {"central"},
    "font-family": {"sans-serif"},
    "font-weight": {"bold"},
    "width": {"100%"},
    "height": {"100%"},
}
NUMERIC = {"x", "y", "cx", "cy", "r", "stroke-width", "font-size", "pathLength"}


@pytest.fixture
def stroke_drawing() -> Drawing:
    return Drawing.objects.create(
        image=b"", content_type="", strokes=SEVEN_STROKES, pen=16.8, width=280, height=280, source="ws",
        status="done", digit=7, confidence=0.97, probabilities=[0.003] * 9 + [0.97], model_version="cnn-test",
    )  # fmt: skip


def svgs(html: str) -> list[ElementTree.Element]:
    """The drawings' inline <svg> elements of a page, parsed as XML (which also proves them well formed)."""
    return [ElementTree.fromstring(match) for match in re.findall(r'<svg [^>]*"digits-strokes.*?</svg>', html, re.S)]


def paths(element: ElementTree.Element) -> list[ElementTree.Element]:
    return element.findall(".//{http://www.w3.org/2000/svg}path")


def assert_only_numbers_and_constants(element: ElementTree.Element) -> None:
    """What the builder promises: nothing from the stored strokes but numbers reaches the SVG."""
    for node in element.iter():
        tag = node.tag.removeprefix("{http://www.w3.org/2000/svg}")
        assert tag in {"svg", "rect", "g", "path", "text", "circle"}, tag
        assert (node.text or "").isdigit() if tag == "text" else not (node.text or "").strip()
        for name, value in node.attrib.items():
            if name == "d":
                assert re.fullmatch(r"M(-?\d+(\.\d+)? ?)+ L[-\d. ]+", value), value
            elif name == "viewBox":
                assert re.fullmatch(r"0 0 \d+(\.\d+)? \d+(\.\d+)?", value), value
            elif name == "style":
                assert re.fullmatch(r"--delay:\d+(\.\d+)?ms;--duration:\d+(\.\d+)?ms", value), value
            elif name == "class":
                assert value in {"digits-strokes ", "digits-strokes digits-thumb", "digits-strokes digits-picture",
                                 "digits-order"}, value  # fmt: skip
            elif name == "aria-label":
                assert re.fullmatch(r"the drawing, \d+ stroke\(s\)", value), value
            elif name in NUMERIC:
                assert NUMBER.fullmatch(value), (name, value)
            else:
                assert value in CONSTANTS[name], (name, value)


def test_the_list_shows_a_stroke_drawing_as_inline_svg(admin_client, stroke_drawing, drawing):
    page = admin_client.get("/admin/recognizer/drawing/").content.decode()
    [thumbnail] = svgs(page)  # the stroke drawing; the image drawing keeps its <img>
    assert thumbnail.get("viewBox") == "0 0 280 280" and "digits-thumb" in thumbnail.get("class")
    assert len(paths(thumbnail)) == 2
    assert f"/admin/recognizer/drawing/{drawing.pk}/image/" in page
    assert f"/admin/recognizer/drawing/{stroke_drawing.pk}/image/" not in page


def test_the_change_page_draws_the_strokes_in_order_with_a_replay_button(admin_client, stroke_drawing):
    page = admin_client.get(f"/admin/recognizer/drawing/{stroke_drawing.pk}/change/").content.decode()
    [picture] = svgs(page)
    ink = picture.find("{http://www.w3.org/2000/svg}g")
    assert ink.get("stroke-width") == "16.8"  # the pen
    assert ink.get("stroke-linecap") == ink.get("stroke-linejoin") == "round"
    first, second = paths(picture)
    assert first.get("d") == "M84 70 L196 70 126 224" and second.get("d") == "M100 150 L170 150"
    # Replayed in the order drawn: the first stroke in its own time (0.26 s), then the second.
    assert first.get("style") == "--delay:0ms;--duration:260ms"
    assert second.get("style") == "--delay:510ms;--duration:150ms"  # 0.26 s + the gap; at least 0.15 s
    numbers = [(text.text, text.get("x"), text.get("y")) for text in picture.iter("{http://www.w3.org/2000/svg}text")]
    # In a badge by each stroke's start, clear of the pen: its centre 19.6 px from the start, its radius
    # 10.9 and the pen's 8.4.
    assert numbers == [("1", "70.1", "56.1"), ("2", "86.1", "136.1")]
    badges = [(c.get("cx"), c.get("cy"), c.get("r")) for c in picture.iter("{http://www.w3.org/2000/svg}circle")]
    assert badges == [("70.1", "56.1", "10.9"), ("86.1", "136.1", "10.9")]
    assert "Replay the strokes" in page and "recognizer/strokes.js" in page
    assert_only_numbers_and_constants(picture)


def test_a_stroke_drawing_is_served_as_svg(admin_client, stroke_drawing):
    response = admin_client.get(f"/admin/recognizer/drawing/{stroke_drawing.pk}/image/")
    assert response["Content-Type"] == "image/svg+xml" and "sandbox" in response["Content-Security-Policy"]
    assert len(paths(ElementTree.fromstring(response.content))) == 2


def test_an_image_drawing_still_shows_its_image(admin_client, drawing):
    page = admin_client.get(f"/admin/recognizer/drawing/{drawing.pk}/change/").content.decode()
    assert f'<img src="/admin/recognizer/drawing/{drawing.pk}/image/"' in page and not svgs(page)
    assert "Replay the strokes" not in page


HOSTILE = '"/><script>alert(1)</script><svg onload="alert(2)'


@pytest.mark.parametrize(
    ("strokes", "drawn"),
    [
        ([[[HOSTILE, 10], [10, HOSTILE]], [[20, 20, HOSTILE], [30, 30]]], ["M20 20 L30 30"]),  # strings for numbers
        ([[["1e3", "2"], [{"x": 1}, [2]], [True, False], [None, 5]], [[40, 40]]], ["M40 40 L40 40"]),  # no numbers
        ([HOSTILE, [[50, 50], [60, "60"]], {"d": HOSTILE}], ["M50 50 L50 50"]),  # strokes that are not lists
        ({"strokes": HOSTILE}, []),
        (HOSTILE, []),
    ],
)
def test_stored_strokes_cannot_inject_markup(admin_client, strokes, drawn):
    hostile = Drawing.objects.create(
        image=b"", content_type="", strokes=strokes, pen=12, width=280, height=280, source="api", status="queued"
    )
    for url in (f"/admin/recognizer/drawing/{hostile.pk}/change/", "/admin/recognizer/drawing/"):
        page = admin_client.get(url).content.decode()
        assert "alert(" not in page
        [picture] = svgs(page)
        assert_only_numbers_and_constants(picture)
        # Only points made of numbers are drawn (a lone one as a dot: a zero-length line).
        assert [path.get("d") for path in paths(picture)] == drawn


def test_the_svg_builder_writes_only_finite_numbers():
    built = svg.strokes_svg([[[1.25, -3.04, 0], [math.inf, 2], [math.nan, 1], [2e3, 7.96]]], 300, 200, math.nan)
    picture = ElementTree.fromstring(str(built))
    assert_only_numbers_and_constants(picture)
    assert paths(picture)[0].get("d") == "M1.2 -3 L2000 8"  # one decimal; inf and NaN points dropped
    assert picture.find("{http://www.w3.org/2000/svg}g").get("stroke-width") == "12.8"  # ink.default_pen of 300 x 200
    assert picture.get("viewBox") == "0 0 300 200"
