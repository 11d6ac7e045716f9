"""Thousands of malformed requests and frames against the real server: never a 5xx, never a crash."""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from training import samples

pytestmark = pytest.mark.django_db(transaction=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# Images that are almost right: a real PNG cut, flipped or padded; data URLs with odd types.
broken_pngs = st.builds(
    lambda cut, junk: samples.SEVEN[:cut] + junk, st.integers(0, len(samples.SEVEN)), st.binary(max_size=64)
)
data_urls = st.builds(
    lambda kind, params, payload: f"data:{kind}{params};base64,{payload}",
    st.sampled_from(["image/png", "image/jpeg", "image/webp", "text/html", "", "image/svg+xml", "IMAGE/PNG"]),
    st.sampled_from(["", ";charset=utf-8", ";x=y", ";;"]),
    st.one_of(st.text(max_size=60), broken_pngs.map(lambda data: samples.data_url(data).split(",", 1)[1])),
)
image_fields = st.one_of(json_values, data_urls, broken_pngs.map(samples.data_url))
bodies = st.one_of(
    st.builds(
        lambda image, extra: json.dumps({"image": image, **extra}),
        image_fields,
        st.dictionaries(st.text(max_size=8), json_values, max_size=2),
    ),
    json_values.map(json.dumps),
    st.binary(max_size=300),
    st.text(max_size=300),
)  # fmt: skip
content_types = st.sampled_from(
    ["application/json", "image/png", "image/jpeg", "multipart/form-data", "multipart/form-data; boundary=x",
     "text/plain", "application/x-www-form-urlencoded", "", "application/json; charset=latin-1"]
)  # fmt: skip
paths = st.one_of(
    st.just("/api/drawings/"),
    st.builds(lambda q: f"/api/drawings/?wait={q}", st.sampled_from(["-1", "x", "31", "1e9", "nan", "0.01", ""])),
    st.builds(lambda t: f"/api/drawings/{t}/", st.text("0123456789abcdef-", max_size=40)),
    st.builds(lambda t: f"/api/drawings/{t}/feedback/", st.text("0123456789abcdef-", max_size=40)),
)
FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def test_the_http_api_never_answers_5xx(live_server_url):
    session = requests.Session()
    seen: dict[int, int] = {}

    @FUZZ
    @given(method=st.sampled_from(["POST", "GET", "PUT", "DELETE"]), path=paths, body=bodies, kind=content_types)
    def probe(method, path, body, kind):
        response = session.request(
            method, live_server_url + path, data=body, headers={"Content-Type": kind}, timeout=10
        )
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (method, path, kind, body[:200], response.text[:300])
        if path.startswith("/api/") and response.status_code >= 400 and response.status_code != 405:
            assert response.json()["error"]["code"]

    probe()
    print(f"HTTP fuzz: {sum(seen.values())} requests, status codes {dict(sorted(seen.items()))}")
    assert requests.get(live_server_url + "/api/openapi.json", timeout=5).status_code == 200


def test_the_websocket_answers_every_malformed_frame(live_server_url):
    frames = st.one_of(
        bodies.filter(lambda body: isinstance(body, str)),
        st.builds(
            lambda image, ref: json.dumps({"type": "drawing", "image": image, "ref": ref}), image_fields, json_values
        ),
        st.builds(
            lambda kind, rest: json.dumps({"type": kind, **rest}),
            json_values,
            st.dictionaries(st.text(max_size=6), json_values, max_size=3),
        ),
        st.builds(lambda ident: json.dumps({"type": "status", "id": ident}), json_values),
    )  # fmt: skip
    answered = []
    url = live_server_url.replace("http", "ws", 1) + "/ws/recognize/"
    with connect(url, max_size=2**22) as socket:

        @settings(FUZZ, max_examples=1000)
        @given(frame=frames)
        def probe(frame):
            socket.send(frame)
            answer = json.loads(socket.recv(timeout=10))
            answered.append(answer["type"])
            if answer["type"] == "queued":  # a valid drawing slipped through: take its answer too
                answer = json.loads(socket.recv(timeout=10))
            assert answer["type"] in ("error", "prediction") and (answer["type"] != "error" or answer["code"])

        probe()
    print(f"websocket fuzz: {len(answered)} frames, {answered.count('error')} answered with an error")
    assert len(answered) >= 1000
