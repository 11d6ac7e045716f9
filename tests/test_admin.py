"""The drawing admin opens for staff and shows what was stored."""

import pytest

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


def test_it_filters_the_list(admin_client, drawing):
    response = admin_client.get("/admin/recognizer/drawing/?status__exact=done&digit=7")
    assert response.status_code == 200 and str(drawing.pk) in response.content.decode()


def test_it_opens_a_drawing_and_serves_its_image_as_stored(admin_client, drawing):
    assert admin_client.get(f"/admin/recognizer/drawing/{drawing.pk}/change/").status_code == 200
    image = admin_client.get(f"/admin/recognizer/drawing/{drawing.pk}/image/")
    assert image["Content-Type"] == "image/png" and image["X-Content-Type-Options"] == "nosniff"
    assert image.content == samples.SEVEN


def test_it_records_who_labeled_a_drawing(admin_client, admin_user, drawing):
    form = {"label": 1}
    response = admin_client.post(f"/admin/recognizer/drawing/{drawing.pk}/change/", form)
    assert response.status_code == 302
    drawing.refresh_from_db()
    assert drawing.label == 1 and drawing.labeled_by == admin_user and drawing.labeled_at


def test_it_keeps_drawings_from_anonymous_users(client, drawing):
    assert client.get("/admin/recognizer/drawing/").status_code == 302
    assert client.get(f"/admin/recognizer/drawing/{drawing.pk}/image/").status_code == 302
