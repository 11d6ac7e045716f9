"""The canvas page in a real browser (Debian's chromium, driven by Playwright) on the real stack."""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from digitsite.redis_server import free_port
from digitsite.stack import stop, wait_for_workers, worker_command
from recognizer.models import Drawing

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"no browser at {CHROMIUM}: apt-get install chromium"),
]
BLANK_MARK = "\N{EN DASH}"  # what the page shows for a blank canvas
# Pen strokes per digit, in canvas units (0..1), drawn as a person would.
STROKES = {
    0: [[(0.5 + 0.2 * math.sin(t * math.pi / 6), 0.5 - 0.3 * math.cos(t * math.pi / 6)) for t in range(13)]],
    1: [[(0.5, 0.2), (0.5, 0.8)]],
    2: [[(0.3, 0.33), (0.4, 0.22), (0.6, 0.22), (0.68, 0.35), (0.6, 0.5), (0.3, 0.8), (0.72, 0.8)]],
    4: [[(0.62, 0.8), (0.62, 0.2), (0.28, 0.6), (0.75, 0.6)]],
    7: [[(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)]],
}


@pytest.fixture(scope="module")  # Playwright's loop must end before other modules' asyncio tests
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, which makes Django
    # refuse the tests' own (synchronous) database queries unless told they are safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield launched
        launched.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def screenshots(tmp_path) -> Path:
    """Where screenshots go: SCREENSHOTS (e.g. docs/screenshots, for the README) or a temp folder."""
    folder = Path(os.environ.get("SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def own_web_url(processes, live_server_url):
    """A web process of the test's own, for pages that write admin History entries. The session's
    web process keeps the content types' ids it read before other tests flushed the database and
    made them anew: an entry naming one that was gone failed (FOREIGN KEY constraint failed)."""
    port = free_port()
    web = processes.start_web(port)
    yield f"http://127.0.0.1:{port}"
    stop([web])


def open_page(browser, url: str, **context):
    page = browser.new_context(**context).new_page()
    page.goto(url + "/")
    page.wait_for_selector('#connection[data-state="online"]')
    return page


def points(page, stroke):
    box = page.locator("#pad").bounding_box()
    path = []
    for (x0, y0), (x1, y1) in itertools.pairwise(stroke):
        path += [(x0 + (x1 - x0) * t / 8, y0 + (y1 - y0) * t / 8) for t in range(8)]
    path.append(stroke[-1])
    return [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in path]


def draw_with_mouse(page, strokes) -> None:
    for stroke in strokes:
        path = points(page, stroke)
        page.mouse.move(*path[0])
        page.mouse.down()
        for x, y in path[1:]:
            page.mouse.move(x, y)
        page.mouse.up()


def draw_with_touch(page, strokes) -> None:
    cdp = page.context.new_cdp_session(page)
    for stroke in strokes:
        path = points(page, stroke)
        cdp.send(
            "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": path[0][0], "y": path[0][1]}]}
        )
        for x, y in path[1:]:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def draw_with_pen(page, strokes, button: str = "left") -> None:
    """The pen's tip down, or with `button="right"`, its barrel button held as it touches."""
    cdp = page.context.new_cdp_session(page)
    held = {"left": 1, "right": 2}[button]
    for stroke in strokes:
        path = points(page, stroke)
        pen = {"button": button, "pointerType": "pen", "clickCount": 1}
        cdp.send(
            "Input.dispatchMouseEvent",
            {"type": "mousePressed", "x": path[0][0], "y": path[0][1], "buttons": held, **pen},
        )
        for x, y in path[1:]:
            cdp.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "buttons": held, **pen})
        cdp.send("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": path[-1][0], "y": path[-1][1], **pen})


def answer(page) -> str:
    """The digit shown once the answer to the latest drawing arrived."""
    page.wait_for_function("document.getElementById('result').dataset.state !== 'waiting'")
    return page.locator("#digit").text_content()


def frame(page, frames: list[str], kind: str) -> dict:
    """The first websocket frame of this type among those recorded, waiting up to 15 s for it."""
    for _ in range(150):
        if found := [message for message in map(json.loads, frames) if message.get("type") == kind]:
            return found[0]
        page.wait_for_timeout(100)
    raise AssertionError(f"no {kind} frame came")


# A websocket that can never connect (as behind a proxy that refuses upgrades): drawings go over HTTP.
NO_WEBSOCKET = """
window.WebSocket = class extends EventTarget {
  static OPEN = 1;
  readyState = 3;
  constructor() { super(); setTimeout(() => this.dispatchEvent(new Event("close")), 0); }
};
"""


def page_whose_socket_answers(browser, url: str, answer):
    """A page, online, whose websocket is the test's own: `answer(socket, frame)` for each drawing frame."""
    page = browser.new_context().new_page()

    def route(socket) -> None:
        def on_message(message: str) -> None:
            if (frame := json.loads(message)).get("type") == "drawing":
                answer(socket, frame)

        socket.on_message(on_message)

    page.route_web_socket("**/ws/recognize/", route)
    page.goto(url + "/")
    page.wait_for_selector('#connection[data-state="online"]')
    return page


def offline_context(browser):
    context = browser.new_context()
    context.add_init_script(NO_WEBSOCKET)
    return context


def clear(page) -> None:
    page.click("#clear")
    assert page.locator("#digit").text_content() == "?"


def test_it_reads_digits_drawn_with_a_mouse(browser, live_server_url, screenshots):
    page = open_page(browser, live_server_url, viewport={"width": 1000, "height": 760})
    for digit, strokes in STROKES.items():
        clear(page)
        draw_with_mouse(page, strokes)
        assert answer(page) == str(digit)
        assert page.locator("#bars li").count() == 10
        assert page.locator("#bars li.top").text_content().strip() == str(digit)
        assert page.locator("#pad").get_attribute("data-pointer") == "mouse"
    page.wait_for_timeout(300)  # let the bars finish growing
    page.screenshot(path=screenshots / "canvas-desktop.png")
    assert page.locator("#history li").count() == len(STROKES)
    assert Drawing.objects.filter(status="done", source="ws").count() >= len(STROKES)


def test_it_says_when_it_is_unsure(browser, live_server_url):
    page = open_page(browser, live_server_url)
    scribble = [(0.3 + 0.4 * (i % 2), 0.2 + 0.6 * i / 9) for i in range(10)]  # a zigzag
    draw_with_mouse(page, [scribble, [(0.2, 0.5), (0.8, 0.5)]])
    shown = answer(page)
    stored = Drawing.objects.filter(status="done").latest("finished_at")
    assert shown == str(stored.digit)
    summary = page.locator("#summary").text_content()
    assert page.locator("#result").get_attribute("data-uncertain") == str(stored.uncertain).lower()
    assert ("is it a digit?" in summary) == stored.uncertain


def test_it_reads_digits_drawn_with_a_finger_on_a_phone(browser, live_server_url, screenshots):
    phone = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
    page = open_page(browser, live_server_url, **phone)
    for digit in (7, 1):
        clear(page)
        draw_with_touch(page, STROKES[digit])
        assert answer(page) == str(digit)
        assert page.locator("#pad").get_attribute("data-pointer") == "touch"
    # The bitmap follows the screen's pixel density, not the CSS size.
    assert page.evaluate("document.getElementById('pad').width") == 2 * round(
        page.locator("#pad").bounding_box()["width"]
    )
    page.wait_for_timeout(300)
    page.screenshot(path=screenshots / "canvas-phone.png", full_page=True)


def test_it_reads_digits_drawn_with_a_pen(browser, live_server_url):
    page = open_page(browser, live_server_url)
    draw_with_pen(page, STROKES[4])
    assert answer(page) == "4"
    assert page.locator("#pad").get_attribute("data-pointer") == "pen"


# A pen's eraser end put down and moved (button 5, buttons 32), as Chromium reports it; CDP has no eraser.
ERASER_STROKE = """([x0, y0, x1, y1]) => {
  const pad = document.getElementById("pad");
  const pen = { pointerId: 1, pointerType: "pen", isPrimary: true, bubbles: true, cancelable: true };
  pad.dispatchEvent(new PointerEvent("pointerdown", { ...pen, button: 5, buttons: 32, clientX: x0, clientY: y0 }));
  pad.dispatchEvent(new PointerEvent("pointermove", { ...pen, button: -1, buttons: 32, clientX: x1, clientY: y1 }));
  pad.dispatchEvent(new PointerEvent("pointerup", { ...pen, button: 5, buttons: 0, clientX: x1, clientY: y1 }));
}"""


def test_a_pen_draws_with_its_tip_not_its_barrel_button_or_eraser(browser, live_server_url):
    page, sent = open_recorded_page(browser, live_server_url)
    draw_with_pen(page, STROKES[7], button="right")
    rubbed = points(page, [(0.2, 0.2), (0.8, 0.8)])
    page.evaluate(ERASER_STROKE, [*rubbed[0], *rubbed[-1]])
    pad = "document.getElementById('pad')"
    assert page.evaluate(
        f"{pad}.getContext('2d').getImageData(0, 0, {pad}.width, {pad}.height).data.every(v => v === 255)"
    )
    draw_with_pen(page, STROKES[1])
    assert answer(page) == "1"
    [drawing] = [m for m in map(json.loads, sent) if m.get("type") == "drawing"]  # the tip's alone
    assert len(drawing["strokes"]) == 1


def test_it_keeps_a_stroke_that_leaves_the_canvas(browser, live_server_url):
    page = open_page(browser, live_server_url)
    draw_with_mouse(page, [[(0.3, 0.25), (0.7, 0.25), (1.4, 0.5), (0.45, 0.8), (0.45, 1.3)]])
    assert answer(page) not in ("?", BLANK_MARK, "!")  # released outside the canvas, still sent and answered


def test_a_second_finger_does_not_join_the_stroke(browser, live_server_url):
    # Real touches of two fingers (two pointerIds): one draws a 1; the other (or a palm) comes down
    # after it, moves beside it and is still there, moving on, once the first has lifted.
    page, sent = open_recorded_page(browser, live_server_url, **PHONE)
    cdp = page.context.new_cdp_session(page)

    def touch(kind: str, *touching: dict) -> None:
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": list(touching)})

    finger = [{"id": 0, "x": x, "y": y} for x, y in points(page, STROKES[1][0])]
    palm = [{"id": 1, "x": x, "y": y} for x, y in points(page, [(0.1, 0.3), (0.2, 0.6), (0.2, 0.9)])]
    touch("touchStart", finger[0])
    for at_finger, at_palm in zip(finger, palm, strict=False):
        touch("touchMove", at_finger, at_palm)  # the palm's first touches down
    for at_palm in palm[len(finger) :]:
        touch("touchMove", at_palm)  # the finger, no longer among the touches, has lifted
    touch("touchEnd")
    drawing = frame(page, sent, "drawing")
    middle = drawing["width"] / 2
    assert len(drawing["strokes"]) == 1 and all(abs(x - middle) <= 2 for x, _, _ in drawing["strokes"][0])
    assert answer(page) == "1"
    box = page.locator("#pad").bounding_box()
    pixels = [(round((p["x"] - box["x"]) * 2), round((p["y"] - box["y"]) * 2)) for p in palm]  # 2 px a CSS px
    red = "(pixels) => { const ctx = document.getElementById('pad').getContext('2d'); " \
          "return pixels.map(([x, y]) => ctx.getImageData(x, y, 1, 1).data[0]); }"  # fmt: skip
    assert set(page.evaluate(red, pixels)) == {255}  # nothing drawn where the palm went


def test_it_answers_a_blank_canvas_as_blank(browser, live_server_url, screenshots):
    page = open_page(browser, live_server_url)
    box = page.locator("#pad").bounding_box()
    page.mouse.click(box["x"] + 40, box["y"] + 40)  # a single speck
    assert answer(page) == BLANK_MARK
    assert "Nothing to read there" in page.locator("#summary").text_content()
    assert page.locator("#feedback").is_hidden()
    page.screenshot(path=screenshots / "canvas-blank.png")


def test_it_sends_feedback_and_clears(browser, live_server_url):
    page = open_page(browser, live_server_url)
    draw_with_mouse(page, STROKES[7])
    assert answer(page) == "7"
    page.get_by_role("button", name="It was a 1").click()
    page.wait_for_selector("#feedback-status:has-text('Thanks')")
    latest = Drawing.objects.filter(status="done").order_by("-created_at").first()
    assert latest.feedback_label == 1 and latest.digit == 7
    assert page.locator("#history li b").first.text_content().startswith("1")
    page.keyboard.press("Escape")  # the keyboard clears too
    assert page.locator("#digit").text_content() == "?"
    assert page.evaluate("[...document.getElementById('pad').getContext('2d').getImageData(0, 0, 50, 50).data]"
                         ".every((v) => v === 255)")  # fmt: skip


def test_it_reconnects_after_the_server_restarts(browser, processes, live_server_url):
    port = free_port()
    web = processes.start_web(port)
    page = open_page(browser, f"http://127.0.0.1:{port}")
    web.terminate()
    web.wait(15)
    page.wait_for_selector('#connection[data-state="offline"]')
    assert "reconnecting" in page.locator("#connection").text_content()
    processes.start_web(port)
    page.wait_for_selector('#connection[data-state="online"]', timeout=15_000)
    draw_with_mouse(page, STROKES[1])
    assert answer(page) == "1"


def test_it_asks_again_for_an_answer_it_missed_while_reconnecting(browser, processes, live_server_url):
    # No worker while the drawing waits, so its result can only come after the page reconnected.
    workers = [p for p in processes.started if "worker" in p.args and p.poll() is None]
    stop(workers)
    port = free_port()
    web = processes.start_web(port)
    page = browser.new_context().new_page()
    sent, received, errors = [], [], []
    page.on(
        "websocket",
        lambda ws: (ws.on("framesent", lambda f: sent.append(f)), ws.on("framereceived", lambda f: received.append(f))),
    )
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for_selector('#connection[data-state="online"]')
    before = Drawing.objects.count()
    try:
        draw_with_mouse(page, STROKES[7])
        drawing_id = frame(page, received, "queued")["id"]
        web.terminate()
        web.wait(15)
        page.wait_for_selector('#connection[data-state="offline"]')
        processes.start_web(port)
        page.wait_for_selector('#connection[data-state="online"]', timeout=15_000)
        assert frame(page, sent, "status")["id"] == drawing_id  # asked again, on the new connection
        assert page.locator("#result").get_attribute("data-state") == "waiting"
    finally:
        worker = processes.start("worker-again", worker_command("worker1@%h"))
        wait_for_workers(1, [worker])
    page.wait_for_function("document.getElementById('result').dataset.state !== 'waiting'", timeout=60_000)
    assert page.locator("#digit").text_content() == "7"
    assert Drawing.objects.count() == before + 1  # answered without drawing again
    assert Drawing.objects.get(pk=drawing_id).status == "done" and not errors


def test_it_polls_over_http_when_the_answer_takes_long(browser, live_server_url):
    context = offline_context(browser)
    # Past the request's own wait at once: the page gets 202 and must poll for the answer.
    context.route(
        lambda url: "wait=10" in url, lambda route: route.continue_(url=route.request.url.replace("wait=10", "wait=0"))
    )
    page = context.new_page()
    polled = []
    page.on("request", lambda request: request.method == "GET" and "/api/drawings/" in request.url and polled.append(1))
    page.goto(live_server_url + "/")
    page.wait_for_selector('#connection[data-state="offline"]')
    draw_with_mouse(page, STROKES[7])
    assert answer(page) == "7" and polled
    assert Drawing.objects.filter(source="api").latest("created_at").digit == 7


def test_a_drawing_cleared_while_polled_over_http_gets_its_answer_in_the_history(browser, live_server_url):
    context = offline_context(browser)
    context.route(  # 202 at once: the page polls
        lambda url: "wait=10" in url, lambda route: route.continue_(url=route.request.url.replace("wait=10", "wait=0"))
    )
    page = context.new_page()
    polls, busy = [], [True]

    def answer_poll(route) -> None:
        polls.append(route.request.url)
        if busy[0]:
            route.fulfill(json={"status": "queued"})  # as while the workers are busy
        else:
            route.continue_()

    page.route("**/api/drawings/*/", answer_poll)
    page.goto(live_server_url + "/")
    page.wait_for_selector('#connection[data-state="offline"]')
    draw_with_mouse(page, STROKES[7])
    until(page, lambda: polls, "the drawing polled")
    clear(page)
    polled = len(polls)
    until(page, lambda: len(polls) > polled, "the drawing polled after Clear")  # not given up
    busy[0] = False
    page.wait_for_function("document.querySelector('#history li b').textContent === '7'")
    assert page.locator("#history li img").get_attribute("alt") == "drawing read as 7"
    # The pad shows the new, empty drawing all along.
    assert page.locator("#result").get_attribute("data-state") == "waiting"
    assert page.locator("#summary").text_content() == "Waiting for a drawing."


def test_a_poll_refused_for_now_is_waited_out_not_shown_as_unreadable(browser, live_server_url):
    # Over HTTP, a poll answered 429 (too many reads) ended the drawing as "!", though it was stored.
    context = offline_context(browser)
    context.route(  # 202 at once: the page polls
        lambda url: "wait=10" in url, lambda route: route.continue_(url=route.request.url.replace("wait=10", "wait=0"))
    )
    page = context.new_page()
    polls = []

    def answer_poll(route) -> None:
        polls.append(route.request.url)
        if len(polls) == 1:
            limited = {"error": {"code": "rate_limited", "message": "too many requests"}}
            route.fulfill(status=429, json=limited, headers={"Retry-After": "1"})
        else:
            route.continue_()

    page.route("**/api/drawings/*/", answer_poll)
    page.goto(live_server_url + "/")
    page.wait_for_selector('#connection[data-state="offline"]')
    draw_with_mouse(page, STROKES[7])
    assert answer(page) == "7" and len(polls) >= 2


def test_a_drawing_whose_socket_closed_before_any_reply_is_sent_over_http(browser, live_server_url):
    # The socket closes as the drawing frame goes out (a proxy's restart): the server may never have
    # seen it, and no id came back to ask about. The page sends it again over HTTP, and shows the answer.
    dropped = []

    def drop(socket, frame: dict) -> None:
        dropped.append(frame)
        socket.close()

    page = page_whose_socket_answers(browser, live_server_url, drop)
    draw_with_mouse(page, STROKES[7])
    assert answer(page) == "7" and len(dropped) == 1
    assert Drawing.objects.get(source="api").digit == 7


def test_a_socket_refused_as_one_too_many_is_not_retried_twice_a_second(browser, live_server_url):
    # The server accepts, says why in a frame of no drawing's, and closes with 1013 (try again later):
    # the 51st tab behind one address. Drawings go over HTTP meanwhile.
    page = browser.new_context().new_page()
    opened = []

    def refuse(socket) -> None:
        opened.append(1)
        too_many = {"code": "too_many_connections", "message": "at most 50 open websockets per client"}
        socket.send(json.dumps({"type": "error", "ref": None, **too_many}))
        socket.close(code=1013)

    page.route_web_socket("**/ws/recognize/", refuse)
    page.goto(live_server_url + "/")
    page.wait_for_selector('#connection[data-state="offline"]')
    page.wait_for_timeout(3000)
    assert len(opened) == 1 and "too many tabs" in page.locator("#connection").text_content()
    assert page.locator("#summary").text_content() == "Waiting for a drawing."  # nothing was drawn yet
    draw_with_mouse(page, STROKES[7])
    assert answer(page) == "7"


def test_an_unreachable_server_leaves_no_earlier_answer_on_show(browser, live_server_url):
    page = offline_context(browser).new_page()
    page.goto(live_server_url + "/")
    draw_with_mouse(page, STROKES[1])
    assert answer(page) == "1"
    page.route("**/api/drawings/**", lambda route: route.abort())
    draw_with_mouse(page, [[(0.3, 0.25), (0.7, 0.25)]])  # a bar added: the drawing now is no longer a 1
    page.wait_for_selector('#result[data-state="error"]')
    assert page.locator("#summary").text_content() == "Could not reach the server; draw again when it is back."
    assert page.locator("#bars li.top").count() == 0 and page.locator("#feedback").is_hidden()
    assert page.locator("#history li b").first.text_content() == "!"
    assert page.locator("#history li img").first.get_attribute("alt") == "drawing not sent: no connection"


def test_a_stroke_whose_release_the_page_never_saw_ends_there(browser, live_server_url):
    # The button let go outside the window (alt-tab): the page sees moves with no button held, and
    # must not draw them, nor join the next stroke onto this one.
    page, sent = open_recorded_page(browser, live_server_url)
    cdp = page.context.new_cdp_session(page)
    stroke = points(page, STROKES[1][0])
    cdp.send("Input.dispatchMouseEvent", {"type": "mousePressed", "x": stroke[0][0], "y": stroke[0][1],
                                          "button": "left", "buttons": 1, "clickCount": 1})  # fmt: skip
    for x, y in stroke[1:]:
        cdp.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "button": "left", "buttons": 1})
    stray = points(page, [(0.5, 0.8), (0.15, 0.5), (0.1, 0.2)])
    for x, y in stray:
        cdp.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "buttons": 0})
    drawing = drawing_frame(page, sent, 1)
    middle = drawing["width"] / 2
    assert all(abs(x - middle) <= 2 for x, _, _ in drawing["strokes"][0])
    assert answer(page) == "1"
    draw_with_mouse(page, [[(0.2, 0.2), (0.3, 0.2)]])  # a stroke of its own, beside the 1
    assert len(drawing_frame(page, sent, 2)["strokes"][1]) >= 2


def test_it_shows_the_servers_error_messages(browser, live_server_url):
    context = offline_context(browser)
    busy = {"error": {"code": "overloaded", "message": "Too many drawings are waiting; try again shortly."}}
    context.route(lambda url: "wait=10" in url, lambda route: route.fulfill(status=503, json=busy))
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(live_server_url + "/")
    draw_with_mouse(page, STROKES[1])
    page.wait_for_selector('#result[data-state="error"]')
    assert page.locator("#summary").text_content() == busy["error"]["message"] and not errors


def test_it_shows_why_an_accepted_drawing_could_not_be_read(browser, live_server_url):
    """A prediction frame whose drawing failed (as a worker answers one it cannot read): its reason."""

    def answer_failed(socket, frame: dict) -> None:
        drawing_id = str(uuid.uuid4())
        socket.send(json.dumps({"type": "queued", "id": drawing_id, "ref": frame["ref"]}))
        failed = {"type": "prediction", "ref": frame["ref"], "id": drawing_id, "status": "failed"}
        socket.send(json.dumps({**failed, "digit": None, "error": "the image could not be read"}))

    page = page_whose_socket_answers(browser, live_server_url, answer_failed)
    draw_with_mouse(page, STROKES[7])
    page.wait_for_selector('#result[data-state="error"]')
    assert page.locator("#summary").text_content() == "the image could not be read"


def test_strokes_refused_as_too_many_say_how_to_go_on(browser, live_server_url):
    # Past the server's limits (points, strokes) every stroke added is refused again: Clear is the way on,
    # said in the page's words (the API's message is for programs).

    def refuse(socket, frame: dict) -> None:
        too_many = {"code": "invalid_strokes", "message": "at most 10000 points in all strokes together, not 12001"}
        socket.send(json.dumps({"type": "error", "ref": frame["ref"], **too_many}))

    page = page_whose_socket_answers(browser, live_server_url, refuse)
    draw_with_mouse(page, STROKES[7])
    page.wait_for_selector('#result[data-state="error"]')
    assert (
        page.locator("#summary").text_content() == "That drawing is too long to read: clear the pad and draw it again."
    )
    assert page.locator("#history li img").get_attribute("alt") == "drawing refused: too long to read"


# A pushed answer of 7, as the server's prediction frame carries it (less its type, id and ref).
SEVEN_ANSWER = {"status": "done", "mode": "digit", "digit": 7, "confidence": 0.99, "number": "7", "digits": None,
                "probabilities": [0.001] * 7 + [0.99] + [0.001] * 2}  # fmt: skip


def page_with_its_own_socket(browser, url: str, on_connect):
    """A page, online, whose websocket `on_connect(socket)` plays the server for, whole."""
    page = browser.new_context().new_page()
    page.route_web_socket("**/ws/recognize/", on_connect)
    page.goto(url + "/")
    page.wait_for_selector('#connection[data-state="online"]')
    return page


RATE_LIMITED = {"code": "rate_limited", "message": "too many drawings from this client: try again in 2 s"}


def page_whose_drawings_are_refused(browser, url: str, door: str) -> tuple:
    """A page whose first drawing is refused as one too many (wait 2 s), over the websocket or HTTP as
    `door` says; the others go to the server, and the page comes with the list of those, as they go."""
    refuse, forwarded = [True], []
    context = browser.new_context() if door == "websocket" else offline_context(browser)
    page = context.new_page()

    def on_connect(socket) -> None:
        server = socket.connect_to_server()

        def on_message(message: str) -> None:
            frame = json.loads(message)
            if frame.get("type") == "drawing" and refuse[0]:
                refuse[0] = False
                socket.send(json.dumps({"type": "error", "ref": frame["ref"], **RATE_LIMITED, "retry_after": 2}))
            else:
                forwarded.append(frame)
                server.send(message)

        socket.on_message(on_message)

    def on_post(route) -> None:
        if refuse[0]:
            refuse[0] = False
            route.fulfill(status=429, json={"error": RATE_LIMITED}, headers={"Retry-After": "2"})
        else:
            forwarded.append(route.request.post_data_json)
            route.continue_()

    if door == "websocket":
        page.route_web_socket("**/ws/recognize/", on_connect)
    else:
        page.route("**/api/drawings/?wait=10", on_post)
    page.goto(url + "/")
    page.wait_for_selector(f'#connection[data-state="{"online" if door == "websocket" else "offline"}"]')
    return page, forwarded


@pytest.mark.parametrize("door", ["websocket", "http"])
def test_a_drawing_refused_as_one_too_many_is_counted_down_and_sent_again(browser, live_server_url, door):
    page, forwarded = page_whose_drawings_are_refused(browser, live_server_url, door)
    draw_with_mouse(page, STROKES[7])
    page.wait_for_selector("#summary:has-text('Too many drawings from here just now: sending it again in 2 s.')")
    assert page.locator("#history li img").get_attribute("alt") == "drawing refused: too many drawings"
    page.wait_for_selector("#summary:has-text('sending it again in 1 s.')")  # counted down
    page.wait_for_function("document.getElementById('result').dataset.state === 'answered'")
    assert page.locator("#digit").text_content() == "7"
    assert page.locator("#history li img").get_attribute("alt") == "drawing read as 7"
    [again] = forwarded  # the same drawing, once
    assert len(again["strokes"]) == 1 and Drawing.objects.get().digit == 7


def test_a_drawing_refused_as_one_too_many_is_not_sent_again_once_cleared(browser, live_server_url):
    page, forwarded = page_whose_drawings_are_refused(browser, live_server_url, "websocket")
    draw_with_mouse(page, STROKES[7])
    page.wait_for_selector("#summary:has-text('sending it again in 2 s.')")
    clear(page)
    page.wait_for_timeout(2500)  # past the wait: nothing is sent, as nothing is left to send
    assert not forwarded and page.locator("#summary").text_content() == "Waiting for a drawing."
    assert page.locator("#history li b").text_content() == "!"


def test_a_status_refused_after_a_reconnect_is_asked_again_and_the_drawing_not_sent_again(browser, live_server_url):
    # The drawing was stored and queued when the socket dropped; the status the page asked for on
    # reconnecting was refused for now (too many requests). Taken for the drawing's own refusal, the
    # drawing was sent again, and stored twice.
    drawing_id, frames = str(uuid.uuid4()), []

    def on_connect(socket) -> None:
        def on_message(message: str) -> None:
            frame = json.loads(message)
            frames.append(frame["type"])
            if frame["type"] == "drawing":
                socket.send(json.dumps({"type": "queued", "id": drawing_id, "ref": frame["ref"]}))
                socket.close()  # the connection drops before the answer
            elif frames.count("status") == 1:
                socket.send(json.dumps({"type": "error", "ref": frame["ref"], **RATE_LIMITED, "retry_after": 1}))
            else:
                socket.send(json.dumps({"type": "prediction", "id": drawing_id, "ref": frame["ref"], **SEVEN_ANSWER}))

        socket.on_message(on_message)

    page = page_with_its_own_socket(browser, live_server_url, on_connect)
    draw_with_mouse(page, STROKES[7])
    assert answer(page) == "7"
    assert frames == ["drawing", "status", "status"]


def test_a_stroke_begun_during_a_countdown_stops_it(browser, live_server_url):
    # The count ran out while the pen was still down: the drawing without the new stroke was sent
    # again and answered mid-stroke, and then the new one too (stored twice, counted twice).
    page, forwarded = page_whose_drawings_are_refused(browser, live_server_url, "websocket")
    draw_with_mouse(page, STROKES[7])
    page.wait_for_selector("#summary:has-text('sending it again in 2 s.')")
    path = points(page, [(0.5, 0.4), (0.6, 0.4)])
    page.mouse.move(*path[0])
    page.mouse.down()
    for x, y in path[1:]:  # a slow stroke, past the end of the count
        page.mouse.move(x, y)
        page.wait_for_timeout(300)
    assert not forwarded and page.locator("#result").get_attribute("data-state") != "answered"
    page.mouse.up()
    page.wait_for_function("document.getElementById('result').dataset.state === 'answered'")
    [sent] = forwarded  # the drawing with both strokes, once
    assert len(sent["strokes"]) == 2


def test_a_drawing_cleared_while_its_socket_was_down_gets_its_answer_in_the_history(browser, live_server_url):
    # On reconnecting the page asked only about the drawing on the pad: a cleared one, queued when
    # the socket dropped, kept "…" in the history for good.
    drawing_id, frames, sockets = str(uuid.uuid4()), [], []

    def on_connect(socket) -> None:
        sockets.append(socket)

        def on_message(message: str) -> None:
            frame = json.loads(message)
            frames.append(frame["type"])
            if frame["type"] == "drawing":
                socket.send(json.dumps({"type": "queued", "id": drawing_id, "ref": frame["ref"]}))
            elif frame["type"] == "status":
                socket.send(json.dumps({"type": "prediction", "id": drawing_id, "ref": frame["ref"], **SEVEN_ANSWER}))

        socket.on_message(on_message)

    page = page_with_its_own_socket(browser, live_server_url, on_connect)
    draw_with_mouse(page, STROKES[7])
    until(page, lambda: frames == ["drawing"], "the drawing sent")
    clear(page)
    sockets[0].close()  # the connection drops before the answer
    page.wait_for_function("document.querySelector('#history li b').textContent === '7'")
    assert frames == ["drawing", "status"]
    assert page.locator("#result").get_attribute("data-state") == "waiting"  # the pad stays empty


def test_it_says_when_feedback_cannot_be_saved(browser, live_server_url):
    page = open_page(browser, live_server_url)
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    draw_with_mouse(page, STROKES[7])
    assert answer(page) == "7"
    limited = {"error": {"code": "rate_limited", "message": "Too many requests."}}
    page.route("**/feedback/", lambda route: route.fulfill(status=429, json=limited))
    page.get_by_role("button", name="It was a 1").click()
    page.wait_for_selector("#feedback-status:has-text('Could not save that: Too many requests.')")
    page.unroute("**/feedback/")
    page.route("**/feedback/", lambda route: route.abort())  # the network fails
    page.get_by_role("button", name="It was a 2").click()
    page.wait_for_selector("#feedback-status:has-text('Could not reach the server')")
    assert not errors  # no uncaught promise


def test_it_shows_drawings_in_the_admin(browser, live_server_url, screenshots, django_user_model):
    # Hashed with the server's hasher: the test settings use a faster one the server lacks.
    password = PBKDF2PasswordHasher().encode("a-long-password", "pagetestsalt")
    django_user_model.objects.create(username="admin", password=password, is_staff=True, is_superuser=True)
    page = open_page(browser, live_server_url, viewport={"width": 1200, "height": 700})
    draw_with_mouse(page, STROKES[2])
    assert answer(page) == "2"
    page.goto(live_server_url + "/admin/login/?next=/admin/recognizer/drawing/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "a-long-password")
    page.click("input[type=submit]")
    page.wait_for_selector("#result_list")
    # The page sent strokes, so the thumbnail is the SVG drawn from them (an image drawing's is an <img>).
    thumbnail = page.locator("#result_list svg.digits-thumb").first
    assert thumbnail.locator("path").count() >= 1 and thumbnail.bounding_box()["width"] > 0
    page.screenshot(path=screenshots / "admin-drawings.png")
    # Every column fits a 1400 px screen beside the admin's sidebar and filters: no scrolling sideways.
    page.set_viewport_size({"width": 1400, "height": 800})
    widths = page.eval_on_selector(".results", "results => [results.scrollWidth, results.clientWidth]")
    assert widths[0] <= widths[1], widths


def test_it_reviews_drawings_with_the_keyboard_only(browser, own_web_url, screenshots, django_user_model):
    password = PBKDF2PasswordHasher().encode("a-long-password", "pagetestsalt")
    django_user_model.objects.create(username="admin", password=password, is_staff=True, is_superuser=True)
    page = open_page(browser, own_web_url, viewport={"width": 1200, "height": 800})
    for digit in (7, 1, 2):
        clear(page)
        draw_with_mouse(page, STROKES[digit])
        assert answer(page) == str(digit)
    page.goto(own_web_url + "/admin/login/?next=/admin/recognizer/drawing/review/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "a-long-password")
    page.keyboard.press("Enter")
    page.wait_for_selector("#review")
    page.screenshot(path=screenshots / "admin-review.png")
    first = page.locator("#review").get_attribute("data-drawing")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"document.getElementById('review').dataset.drawing !== '{first}'")
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector(f"#review[data-drawing='{first}']")
    page.keyboard.press("Enter")  # confirm the prediction
    page.wait_for_function(f"document.getElementById('review').dataset.drawing !== '{first}'")
    second = page.locator("#review").get_attribute("data-drawing")
    page.keyboard.press("4")
    page.wait_for_function(f"document.getElementById('review').dataset.drawing !== '{second}'")
    third = page.locator("#review").get_attribute("data-drawing")
    page.keyboard.press("x")
    page.wait_for_selector("text=Nothing left to review")
    labels = dict(Drawing.objects.filter(pk__in=[first, second, third]).values_list("pk", "label"))
    first_drawing = Drawing.objects.get(pk=first)
    assert first_drawing.label == first_drawing.digit
    assert labels[uuid.UUID(second)] == 4 and labels[uuid.UUID(third)] == 10


def test_it_redraws_the_drawing_sharply_when_the_screen_resizes(browser, live_server_url):
    page = open_page(browser, live_server_url, viewport={"width": 390, "height": 844}, device_scale_factor=2)
    draw_with_mouse(page, STROKES[1])
    assert answer(page) == "1"
    page.set_viewport_size({"width": 60, "height": 844})  # a tiny bitmap for a moment ...
    page.set_viewport_size({"width": 390, "height": 844})  # ... and back
    # Redrawn from its strokes, the line's edges are sharp again: only a pixel or two of
    # anti-aliasing each side, where a stretched copy of the tiny bitmap would be all blur.
    row = "(() => { const p = document.getElementById('pad'); " \
          "return [...p.getContext('2d').getImageData(0, p.height / 2, p.width, 1).data]; })()"  # fmt: skip
    red = page.evaluate(row)[::4]
    assert min(red) == 0
    assert sum(0 < value < 255 for value in red) <= 6


# The page's media queries on the pixel ratio, kept where the test can reach them.
KEEP_RESOLUTION_QUERIES = """
window.__resolutionQueries = [];
const matchMedia = window.matchMedia.bind(window);
window.matchMedia = (query) => {
  const list = matchMedia(query);
  if (query.includes("resolution")) window.__resolutionQueries.push(list);
  return list;
};
"""


def test_it_redraws_the_drawing_sharply_when_only_the_pixel_density_changes(browser, live_server_url):
    # The window moved to a HiDPI screen: the CSS size stays, so no resize event need come.
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    context.add_init_script(KEEP_RESOLUTION_QUERIES)
    page = context.new_page()
    page.goto(live_server_url + "/")
    page.wait_for_selector('#connection[data-state="online"]')
    draw_with_mouse(page, STROKES[1])
    assert answer(page) == "1"
    pad = "document.getElementById('pad')"
    assert page.evaluate(f"{pad}.width") == round(page.locator("#pad").bounding_box()["width"])
    cdp = page.context.new_cdp_session(page)
    for ratio in (2, 3):  # and again: the page listens for the ratio it changed to
        cdp.send("Emulation.setDeviceMetricsOverride", {"width": 1000, "height": 760, "deviceScaleFactor": ratio,
                                                        "mobile": False})  # fmt: skip
        # Chromium's emulation changes devicePixelRatio without telling the media queries, as a move
        # between real screens does: the test tells the query the page listens on.
        page.evaluate("window.__resolutionQueries.at(-1).dispatchEvent(new Event('change'))")
        page.wait_for_function(f"{pad}.width === {ratio} * Math.round({pad}.getBoundingClientRect().width)")
        middle = f"[...{pad}.getContext('2d').getImageData(0, {pad}.height / 2, {pad}.width, 1).data]"
        assert min(page.evaluate(middle)[::4]) == 0  # the 1 redrawn at the new size


# ---- what the page sends: strokes, or a PNG when asked ------------------------------------------


def record_sent_frames(page) -> list[str]:
    sent: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    return sent


def open_recorded_page(browser, url: str, **context) -> tuple:
    """A page opened and online, and the list of the websocket frames it sends, as they are sent."""
    page = browser.new_context(**context).new_page()
    sent = record_sent_frames(page)
    page.goto(url + "/")
    page.wait_for_selector('#connection[data-state="online"]')
    return page, sent


def drawing_frame(page, frames: list[str], strokes: int) -> dict:
    """The first drawing frame with this many strokes (one is sent whenever the pen rests), within 15 s."""
    for _ in range(150):
        for message in map(json.loads, frames):
            if message.get("type") == "drawing" and len(message.get("strokes", [])) == strokes:
                return message
        page.wait_for_timeout(100)
    raise AssertionError(f"no drawing frame with {strokes} strokes came: {frames}")


PLUS = [[(0.5, 0.2), (0.5, 0.8)], [(0.2, 0.5), (0.8, 0.5)]]


def test_it_sends_the_drawing_as_strokes(browser, live_server_url):
    # At twice the CSS pixels, as on a phone: the points must be in the pixels that width and height count.
    page, sent = open_recorded_page(browser, live_server_url, device_scale_factor=2)
    draw_with_mouse(page, PLUS)
    drawing = drawing_frame(page, sent, strokes=2)
    assert "image" not in drawing and drawing["ref"] and drawing["mode"] == "digit"
    side = page.evaluate("document.getElementById('pad').width")
    assert side == 2 * round(page.locator("#pad").bounding_box()["width"])
    assert (drawing["width"], drawing["height"]) == (side, side)
    assert drawing["pen"] == round(side * 0.06, 1)  # the line width the canvas draws with
    for stroke in drawing["strokes"]:
        assert isinstance(stroke, list) and len(stroke) >= 2
        for point in stroke:
            assert isinstance(point, list) and len(point) == 3 and all(isinstance(v, int | float) for v in point)
            assert all(round(v, 1) == v for v in point[:2]) and isinstance(point[2], int)  # 0.1 px, whole ms
    # The same shape as drawn: the vertical stroke first, from top to bottom, then the horizontal one.
    (top, *_, bottom), (left, *_, right) = drawing["strokes"]
    for (x, y, _), (u, v) in [(top, (0.5, 0.2)), (bottom, (0.5, 0.8)), (left, (0.2, 0.5)), (right, (0.8, 0.5))]:
        assert abs(x - u * side) <= 2 and abs(y - v * side) <= 2, ((x, y), (u * side, v * side))
    times = [t for stroke in drawing["strokes"] for _, _, t in stroke]
    assert times[0] == 0 and times == sorted(times)  # ms since the first point, in the order drawn


@pytest.mark.parametrize("mode", ["digit", "number"])
def test_it_sends_strokes_over_http_when_the_websocket_is_down(browser, live_server_url, mode):
    context = offline_context(browser)
    context.add_init_script(f"localStorage.setItem('digits.mode', '{mode}')")  # as chosen on an earlier visit
    page = context.new_page()
    posted = []
    page.on("request", lambda r: r.method == "POST" and "/api/drawings/" in r.url and posted.append(r.post_data_json))
    page.goto(live_server_url + "/")
    page.wait_for_selector('#connection[data-state="offline"]')
    draw_with_mouse(page, STROKES[1])
    page.wait_for_function("document.getElementById('result').dataset.state !== 'waiting'")
    [body] = posted
    assert set(body) == {"strokes", "width", "height", "pen", "mode"} and len(body["strokes"]) == 1
    assert body["width"] == page.evaluate("document.getElementById('pad').width") and body["mode"] == mode
    assert Drawing.objects.get(source="api").mode == mode


# data-send="image" on the canvas as the page is parsed, before canvas.js reads it (a page served
# by Playwright instead of the server may not open a websocket to 127.0.0.1).
SEND_IMAGES_ATTRIBUTE = """
new MutationObserver((changes, observer) => {
  const pad = document.getElementById("pad");
  if (pad) { pad.dataset.send = "image"; observer.disconnect(); }
}).observe(document, { childList: true, subtree: true });
"""


@pytest.mark.parametrize("how", ["query", "attribute"])
def test_it_sends_a_png_when_asked(browser, live_server_url, how):
    page = browser.new_context().new_page()
    sent = record_sent_frames(page)
    if how == "attribute":
        page.add_init_script(SEND_IMAGES_ATTRIBUTE)
    page.goto(live_server_url + ("/?send=image" if how == "query" else "/"))
    page.wait_for_selector('#connection[data-state="online"]')
    draw_with_mouse(page, STROKES[7])
    assert (page.locator("#pad").get_attribute("data-send") == "image") == (how == "attribute")
    drawing = frame(page, sent, "drawing")
    assert drawing["image"].startswith("data:image/png;base64,") and "strokes" not in drawing
    assert answer(page) == "7"


def test_every_page_has_an_icon(browser, live_server_url):
    page = browser.new_context().new_page()
    response = page.request.get(live_server_url + "/favicon.ico")  # redirects followed
    assert response.status == 200 and response.headers["content-type"] == "image/svg+xml"
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    with page.expect_response("**/recognizer/favicon.svg") as icon:
        page.goto(live_server_url + "/")  # the icon its link names
    assert icon.value.status == 200 and icon.value.url == response.url
    # Pages without a link (the admin's) have the browser fetch /favicon.ico itself, out of sight of
    # the page's events: a 404 there shows only as an error on the console.
    for url in ("/admin/login/", "/api/docs/"):
        page.goto(live_server_url + url)
        page.wait_for_timeout(1000)
    assert not errors


def log_in(page, live_server_url: str, django_user_model, next_url: str) -> None:
    # Hashed with the server's hasher: the test settings use a faster one the server lacks.
    password = PBKDF2PasswordHasher().encode("a-long-password", "pagetestsalt")
    django_user_model.objects.create(username="admin", password=password, is_staff=True, is_superuser=True)
    page.goto(f"{live_server_url}/admin/login/?next={next_url}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "a-long-password")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_url}")


def test_the_admin_replays_a_drawings_strokes(browser, live_server_url, django_user_model):
    strokes = [[[84, 70, 0], [196, 70, 200], [126, 224, 400]], [[100, 150, 900], [170, 150, 1100]]]
    drawing = Drawing.objects.create(
        image=b"", content_type="", strokes=strokes, pen=16.8, width=280, height=280, source="ws", status="queued"
    )
    page = browser.new_context().new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    log_in(page, live_server_url, django_user_model, f"/admin/recognizer/drawing/{drawing.pk}/change/")
    picture = page.locator("svg.digits-picture")
    picture.wait_for()
    assert picture.locator("path").count() == 2 and picture.bounding_box()["width"] > 100
    offsets = "[...document.querySelectorAll('svg.digits-picture path')].map(p => getComputedStyle(p).strokeDashoffset)"
    page.get_by_role("button", name="Replay the strokes").click()
    assert page.evaluate(offsets)[1] == "1.05px"  # the second stroke waits for the first
    page.wait_for_function(f"{offsets}.every(offset => offset === '0px')", timeout=5000)
    page.get_by_role("button", name="Replay the strokes").click()  # and again
    assert page.evaluate(offsets)[1] == "1.05px" and not errors


# ---- number mode: the switch, the wide pad, and the answer as a number --------------------------------


PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def pad_ratio(page) -> float:
    box = page.locator("#pad").bounding_box()
    return box["width"] / box["height"]


def choose(page, mode_label: str) -> None:
    page.get_by_text(mode_label, exact=True).click()


def test_the_number_switch_widens_the_pad_and_is_remembered(browser, live_server_url):
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    page = context.new_page()
    page.goto(live_server_url + "/")
    assert page.locator("input[value=digit]").is_checked() and pad_ratio(page) == pytest.approx(1, abs=0.02)
    square = page.locator("#pad").bounding_box()["width"]
    choose(page, "A number")
    assert page.locator("body").get_attribute("data-mode") == "number"
    assert pad_ratio(page) == pytest.approx(3, abs=0.05) and page.locator("#pad").bounding_box()["width"] > square
    assert page.evaluate("[document.getElementById('pad').width, document.getElementById('pad').height]") == [
        round(page.locator("#pad").bounding_box()["width"]),
        round(page.locator("#pad").bounding_box()["height"]),
    ]  # the bitmap follows the wide pad, so nothing drawn is stretched
    assert "number" in page.locator("#hint").text_content()
    page.reload()
    assert page.locator("input[value=number]").is_checked() and pad_ratio(page) == pytest.approx(3, abs=0.05)
    choose(page, "One digit")
    assert pad_ratio(page) == pytest.approx(1, abs=0.02)
    page.reload()
    assert page.locator("input[value=digit]").is_checked()


def test_a_phone_gets_a_wide_pad_for_a_number_too(browser, live_server_url):
    page = browser.new_context(**PHONE).new_page()
    page.goto(live_server_url + "/")
    choose(page, "A number")
    assert pad_ratio(page) == pytest.approx(2, abs=0.05)
    assert page.locator("#pad").bounding_box()["width"] > 300  # the page's width, less its margins


@pytest.mark.parametrize(("mode", "ratio"), [("One digit", 1), ("A number", 3)])
def test_the_pad_and_its_clear_button_fit_a_phone_on_its_side(browser, live_server_url, mode, ratio):
    # The pad takes touches for drawing, not scrolling: it must fit the screen's height to be usable.
    landscape = {**PHONE, "viewport": {"width": 844, "height": 390}}
    page, sent = open_recorded_page(browser, live_server_url, **landscape)
    choose(page, mode)
    for element in ("#pad", "#clear"):
        box = page.locator(element).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 844, element
        assert box["y"] >= 0 and box["y"] + box["height"] <= 390, element
    assert pad_ratio(page) == pytest.approx(ratio, abs=0.05)
    # Drawn on the smaller pad, a 1 in its middle is sent in the pixels of its bitmap, and read.
    draw_with_touch(page, [[(0.5, 0.2), (0.5, 0.8)]])
    drawing = frame(page, sent, "drawing")
    assert drawing["width"] == 2 * round(page.locator("#pad").bounding_box()["width"])
    assert all(abs(x - drawing["width"] / 2) <= 2 for x, _, _ in drawing["strokes"][0])
    assert answer(page) == "1"


# What a worker answers about a three-digit number; the boxes in the pixels of the drawing sent.
READ = [(1, 0.99, 0.2), (4, 0.95, 0.45), (7, 0.62, 0.7)]  # digit, confidence, left edge as a share of the width


def number_answer(frame: dict, drawing_id: str, read: list = READ) -> dict:
    width, height = frame["width"], frame["height"]
    digits = [
        {"digit": d, "confidence": sure, "probabilities": [sure if i == d else (1 - sure) / 9 for i in range(10)],
         "box": [left * width, 0.2 * height, (left + 0.1) * width, 0.8 * height]}
        for d, sure, left in read
    ]  # fmt: skip
    return {
        "type": "prediction", "ref": frame["ref"], "id": drawing_id, "status": "done", "mode": "number",
        "digit": None, "confidence": 0.58, "probabilities": None, "number": "".join(str(d) for d, _, _ in read),
        "digits": digits, "uncertain": False, "model_version": "cnn-test", "created_at": "2026-11-29T00:00:00+00:00",
        "latency_ms": 3.0, "error": None,
    }  # fmt: skip


def answer_as_a_worker(page, read: list = READ) -> list[dict]:
    """Answers each drawing the page sends on its websocket as a worker would that read this number;
    the drawing frames sent are returned (as they come)."""
    sent: list[dict] = []

    def on_connect(socket) -> None:
        def on_message(message: str) -> None:
            frame = json.loads(message)
            if frame.get("type") == "drawing":
                sent.append(frame)
                drawing_id = str(uuid.uuid4())
                socket.send(json.dumps({"type": "queued", "id": drawing_id, "ref": frame["ref"]}))
                socket.send(json.dumps(number_answer(frame, drawing_id, read)))

        socket.on_message(on_message)

    page.route_web_socket("**/ws/recognize/", on_connect)
    return sent


def test_it_shows_a_number_with_each_digits_confidence_and_box(browser, live_server_url):
    """The page against a websocket that answers as a worker would about a number: the rendering alone."""
    page = browser.new_context(viewport={"width": 1000, "height": 760}).new_page()
    sent = answer_as_a_worker(page)
    feedback = []
    page.route("**/feedback/", lambda route: (feedback.append(route.request.post_data_json), route.fulfill(json={})))
    page.goto(live_server_url + "/")
    page.wait_for_selector('#connection[data-state="online"]')
    choose(page, "A number")
    draw_with_mouse(page, [[(0.25, 0.2), (0.25, 0.8)]])
    assert answer(page) == "147"
    [frame] = sent
    assert frame["mode"] == "number" and frame["width"] == pytest.approx(3 * frame["height"], rel=0.02)
    assert page.locator("#summary").text_content() == "It reads 147 (58.0 % sure)."
    assert page.locator("#digits li").all_text_contents() == ["199.0 %", "495.0 %", "762.0 %"]
    assert page.locator("#bars").is_hidden() and page.locator("#digits").is_visible()
    pad = page.locator("#pad").bounding_box()
    for rect, (_, _, left) in zip(page.locator("#boxes rect").all(), READ, strict=True):
        box = rect.bounding_box()  # over the ink it boxes, wherever the pad is drawn on the screen (give or
        # take the line's width)
        assert box["x"] + box["width"] / 2 == pytest.approx(pad["x"] + (left + 0.05) * pad["width"], abs=2)
        assert box["y"] + box["height"] / 2 == pytest.approx(pad["y"] + 0.5 * pad["height"], abs=2)
        assert (box["width"], box["height"]) == pytest.approx((0.1 * pad["width"], 0.6 * pad["height"]), abs=3)
    assert page.input_value("#feedback-digits") == "147"  # offered to correct, not typed again
    page.fill("#feedback-digits", "148")
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector("#feedback-status:has-text('Thanks: noted as 148.')")
    assert feedback == [{"number": "148"}]
    page.mouse.move(pad["x"] + 10, pad["y"] + 10)
    page.mouse.down()  # drawing more: the boxes were about the drawing as it was
    assert page.locator("#boxes rect").count() == 0
    page.mouse.up()


def test_escape_in_the_correction_field_keeps_the_drawing(browser, live_server_url):
    page = browser.new_context(viewport={"width": 1000, "height": 760}).new_page()
    answer_as_a_worker(page)
    page.goto(live_server_url + "/")
    page.wait_for_selector('#connection[data-state="online"]')
    choose(page, "A number")
    draw_with_mouse(page, [[(0.25, 0.2), (0.25, 0.8)]])
    assert answer(page) == "147"
    pad = "document.getElementById('pad')"
    inked = f"{pad}.getContext('2d').getImageData(0, 0, {pad}.width, {pad}.height).data.some((v) => v < 255)"
    page.click("#feedback-digits")
    page.keyboard.press("End")
    page.keyboard.press("Backspace")
    page.keyboard.type("8")
    page.keyboard.press("Escape")  # in the field, where a correction is being typed ...
    assert page.locator("#digit").text_content() == "147" and page.input_value("#feedback-digits") == "148"
    assert page.evaluate(inked) and page.locator("#feedback").is_visible()  # ... it keeps all that
    assert page.evaluate("document.activeElement.id") != "feedback-digits"  # and only leaves the field
    page.keyboard.press("Escape")  # out of it, Escape clears the pad
    assert page.locator("#digit").text_content() == "?" and not page.evaluate(inked)


def overlap(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


# The box of an element's text itself, which may overflow the element's own box.
TEXT_BOX = """(element) => {
  const range = document.createRange();
  range.selectNodeContents(element);
  const { x, y, width, height } = range.getBoundingClientRect();
  return { x, y, width, height };
}"""


@pytest.mark.parametrize("number", ["11111111", "123456789012"])
def test_a_long_number_fits_on_a_phone(browser, live_server_url, number):
    page = browser.new_context(**PHONE).new_page()
    answer_as_a_worker(page, [(int(d), 0.9, i / len(number)) for i, d in enumerate(number)])
    page.goto(live_server_url + "/")
    page.wait_for_selector('#connection[data-state="online"]')
    choose(page, "A number")
    draw_with_touch(page, [[(0.25, 0.2), (0.25, 0.8)]])
    assert answer(page) == number
    sentence = page.locator("#summary").bounding_box()
    for shown in (page.locator("#digit").bounding_box(), page.locator("#digit").evaluate(TEXT_BOX)):
        assert not overlap(shown, sentence), (shown, sentence)
        assert shown["x"] >= 0 and shown["x"] + shown["width"] <= PHONE["viewport"]["width"]


def in_place(strokes: list, place: int, places: int, ratio: float) -> list:
    """A digit's strokes, drawn in a square, moved to slot `place` of `places` on a pad `ratio` times as wide."""
    centre = (place + 1) / (places + 1)
    return [[(centre + (x - 0.5) / ratio, y) for x, y in stroke] for stroke in strokes]


@pytest.mark.parametrize(
    ("how", "draw", "context", "shot"),
    [
        ("mouse", draw_with_mouse, {"viewport": {"width": 1000, "height": 760}}, "canvas-number-desktop.png"),
        ("touch", draw_with_touch, PHONE, "canvas-number-phone.png"),
        ("pen", draw_with_pen, {"viewport": {"width": 1000, "height": 760}}, None),
    ],
)
def test_it_reads_a_number_drawn_with_a_mouse_a_finger_and_a_pen(
    browser, live_server_url, screenshots, how, draw, context, shot
):
    page = browser.new_context(**context).new_page()
    sent, received = [], []
    page.on(
        "websocket",
        lambda ws: (ws.on("framesent", lambda f: sent.append(f)), ws.on("framereceived", lambda f: received.append(f))),
    )
    page.goto(live_server_url + "/")
    page.wait_for_selector('#connection[data-state="online"]')
    choose(page, "A number")
    ratio = pad_ratio(page)
    number = "147"
    for place, digit in enumerate(number):
        draw(page, in_place(STROKES[int(digit)], place, len(number), ratio))
    whole = drawing_frame(page, sent, strokes=3)  # a frame goes whenever the pen rests: the last has all three
    assert whole["mode"] == "number" and whole["width"] == pytest.approx(ratio * whole["height"], rel=0.02)
    shown = answer(page)  # the answer to that frame: the page shows no older one once it was sent
    assert page.locator("#pad").get_attribute("data-pointer") == how
    [drawing_id] = [m["id"] for m in map(json.loads, received) if m["type"] == "queued" and m["ref"] == whole["ref"]]
    stored = Drawing.objects.get(pk=drawing_id)
    assert (stored.mode, stored.status) == ("number", "done")
    assert shown == stored.number == number
    assert page.locator("#boxes rect").count() == len(stored.digits) == len(number)
    if shot:
        page.screenshot(path=screenshots / shot, full_page=True)


def test_the_admin_review_corrects_a_number_typed_from_the_keyboard(
    browser, own_web_url, screenshots, django_user_model
):
    digits = [
        {"digit": digit, "confidence": 0.9, "probabilities": [0.1] * 10, "box": [left, 50, left + 60, 210]}
        for digit, left in ((1, 30), (7, 140))
    ]
    drawing = Drawing.objects.create(
        image=b"", content_type="", strokes=[[[60, 60], [60, 200]], [[140, 60], [200, 60], [160, 200]]], pen=18,
        width=560, height=280, source="ws", status="done", mode="number", number="17", digits=digits, confidence=0.81,
    )  # fmt: skip
    page = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    log_in(page, own_web_url, django_user_model, "/admin/recognizer/drawing/review/")
    picture = page.locator("#review svg.digits-picture")
    assert picture.locator(".digits-boxes rect").count() == 2 and picture.bounding_box()["width"] > 400
    assert page.locator("#digits-read .digits-read").all_inner_texts() == ["1\n90.0%", "7\n90.0%"]
    assert page.evaluate("document.activeElement.id") == "number"  # typing corrects the number at once
    page.screenshot(path=screenshots / "admin-review-number.png")
    page.keyboard.type("19")  # the digits, as the page asks: they replace the number read
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Nothing left to review")
    drawing.refresh_from_db()
    assert (drawing.label_number, drawing.label) == ("19", None) and drawing.labeled_by and not errors


# The page's own websocket, with the server's prediction frames held back until the test lets them
# through: an answer that comes late, as from a busy server, on the real stack.
HOLD_ANSWERS = """
window.__held = [];
window.__hold = false;
window.WebSocket = class extends window.WebSocket {
  addEventListener(type, handler, ...rest) {
    if (type !== "message") return super.addEventListener(type, handler, ...rest);
    return super.addEventListener(type, (event) => {
      if (window.__hold && JSON.parse(event.data).type === "prediction") window.__held.push(() => handler(event));
      else handler(event);
    }, ...rest);
  }
};
window.__release = () => { window.__hold = false; window.__held.splice(0).forEach((answer) => answer()); };
"""


def page_with_late_answers(browser, url: str, **context):
    context = browser.new_context(**context)
    context.add_init_script(HOLD_ANSWERS)
    page = context.new_page()
    page.goto(url + "/")
    page.wait_for_selector('#connection[data-state="online"]')
    return page


def held(page, count: int) -> None:
    """Until the server's answers to `count` drawings are waiting to be let through."""
    page.wait_for_function(f"window.__held.length >= {count}")


def test_a_late_answer_is_said_to_be_read_and_a_correction_is_of_the_answer_shown(browser, live_server_url):
    page = page_with_late_answers(browser, live_server_url)
    draw_with_mouse(page, STROKES[1])
    assert answer(page) == "1"
    page.evaluate("window.__hold = true")
    draw_with_mouse(page, [[(0.5, 0.2), (0.4, 0.3)]])  # a flag: a 1 as some write it, read anew
    held(page, 1)
    # Not the earlier answer, as if it were this drawing's, and nothing to correct with until it comes.
    page.wait_for_selector("#summary:has-text('Reading…')")
    assert page.locator("#digit").text_content() == "…" and page.locator("#feedback").is_hidden()
    page.evaluate("window.__release()")
    page.wait_for_function("document.getElementById('result').dataset.state === 'answered'")
    page.get_by_role("button", name="It was a 7").click()
    page.wait_for_selector("#feedback-status:has-text('Thanks')")
    first, second = Drawing.objects.order_by("created_at")
    assert first.feedback_label is None and second.feedback_label == 7
    assert page.locator("#history li b").first.text_content() == "7 ✓"


def test_a_correction_clicked_while_a_newer_drawing_is_read_is_not_saved_on_it(browser, live_server_url):
    page = page_with_late_answers(browser, live_server_url)
    draw_with_mouse(page, STROKES[1])
    assert answer(page) == "1"
    page.evaluate("window.__hold = true")
    draw_with_mouse(page, [[(0.5, 0.2), (0.4, 0.3)]])
    held(page, 1)
    page.get_by_role("button", name="It was a 1").dispatch_event("click")  # inert: as a fast hand would
    page.wait_for_timeout(300)
    assert not Drawing.objects.exclude(feedback_label=None).exists()
    assert page.locator("#feedback-status").text_content() == ""


def test_an_answer_that_comes_after_clear_goes_to_its_history_entry(browser, live_server_url):
    page = page_with_late_answers(browser, live_server_url)
    page.evaluate("window.__hold = true")
    draw_with_mouse(page, STROKES[7])
    held(page, 1)
    clear(page)
    page.evaluate("window.__release()")
    page.wait_for_function("document.querySelector('#history li b').textContent === '7'")
    assert page.locator("#digit").text_content() == "?"  # the pad shows the new, empty drawing


def test_ink_drawn_after_escape_in_the_middle_of_a_stroke_is_neither_shown_nor_sent(browser, live_server_url):
    page, sent = open_recorded_page(browser, live_server_url)
    path = points(page, STROKES[7][0])
    page.mouse.move(*path[0])
    page.mouse.down()
    for x, y in path[: len(path) // 2]:
        page.mouse.move(x, y)
    page.keyboard.press("Escape")
    for x, y in path[len(path) // 2 :]:
        page.mouse.move(x, y)
    page.mouse.up()
    page.wait_for_timeout(400)  # past the pause after a stroke that sends a drawing
    assert page.evaluate("[...document.getElementById('pad').getContext('2d').getImageData(0, 0, "
                         "document.getElementById('pad').width, document.getElementById('pad').height).data]"
                         ".every((v) => v === 255)")  # fmt: skip
    assert not [m for m in map(json.loads, sent) if m.get("type") == "drawing"]
    draw_with_mouse(page, STROKES[1])
    assert answer(page) == "1"
    assert len(drawing_frame(page, sent, strokes=1)["strokes"]) == 1


def test_a_pen_put_down_while_a_palm_rests_draws_and_the_palm_leaves_no_ink(browser, live_server_url):
    page, sent = open_recorded_page(browser, live_server_url, **PHONE)
    cdp = page.context.new_cdp_session(page)
    box = page.locator("#pad").bounding_box()
    palm = {"x": box["x"] + 0.1 * box["width"], "y": box["y"] + 0.9 * box["height"], "radiusX": 30, "radiusY": 30}
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [palm]})
    draw_with_pen(page, STROKES[7])
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    assert answer(page) == "7"
    drawings = [m for m in map(json.loads, sent) if m.get("type") == "drawing"]
    assert drawings and all(len(d["strokes"]) == 1 for d in drawings)  # the pen's stroke alone


def test_an_eight_is_an_eight(browser, live_server_url):
    page = open_page(browser, live_server_url)
    assert page.get_by_role("button", name="It was an 8", include_hidden=True).count() == 1
    assert page.get_by_role("img", name="Draw one digit here with a mouse, finger or pen").count() == 1


def test_turning_a_phone_keeps_the_shape_of_the_ink_and_its_boxes(browser, live_server_url):
    page, sent = open_recorded_page(browser, live_server_url, **PHONE)
    choose(page, "A number")
    draw_with_touch(page, [[(0.25, 0.2), (0.25, 0.8)], [(0.5, 0.25), (0.75, 0.25), (0.6, 0.8)]])  # 17
    upright = drawing_frame(page, sent, strokes=2)
    assert answer(page) == "17"
    before = pad_ratio(page)
    page.set_viewport_size({"width": 844, "height": 390})  # on its side: the pad takes another shape
    assert pad_ratio(page) != pytest.approx(before, rel=0.1)
    # The boxes drawn over the ink keep its shape too: the SVG's view is as wide for its height as the pad.
    view = [float(v) for v in page.locator("#boxes").get_attribute("viewBox").split()]
    assert view[2] / view[3] == pytest.approx(pad_ratio(page), rel=0.02)
    draw_with_touch(page, [[(0.95, 0.5), (0.96, 0.52)]])  # a mark more, so that the drawing is sent again
    turned = drawing_frame(page, sent, strokes=3)

    def shape(drawing: dict) -> float:
        xs, ys = zip(*((x, y) for stroke in drawing["strokes"][:2] for x, y, _ in stroke), strict=True)
        return (max(xs) - min(xs)) / (max(ys) - min(ys))

    assert shape(turned) == pytest.approx(shape(upright), rel=0.03)  # stretched across, it was 1.5 times wider


def until(page, condition, what: str) -> None:
    """Until `condition()` holds (state the page's events feed on this side), within 15 s."""
    for _ in range(150):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"{what}: not within 15 s")


@pytest.mark.parametrize("how", ["a digit, then Clear", "a number, then a mode switch"])
def test_a_correction_saved_after_the_pad_moved_on_goes_to_its_own_drawing(browser, live_server_url, how):
    page = open_page(browser, live_server_url)
    held = []
    page.route("**/feedback/", lambda route: held.append(route))  # answered when the test lets it through
    if how == "a digit, then Clear":
        draw_with_mouse(page, STROKES[7])
        assert answer(page) == "7"
        page.get_by_role("button", name="It was a 1").click()
        said = "1"
    else:
        choose(page, "A number")
        draw_with_mouse(page, in_place(STROKES[7], 0, 1, pad_ratio(page)))
        answer(page)
        page.fill("#feedback-digits", "12")
        page.get_by_role("button", name="Save").click()
        said = "12"
    until(page, lambda: held, "the correction sent")
    if how == "a digit, then Clear":
        clear(page)
    else:
        choose(page, "One digit")  # a new, empty drawing too
    held[0].continue_()
    page.wait_for_function(f"document.querySelector('#history li b').textContent === '{said} ✓'")
    assert page.locator("#history li").count() == 1  # no entry for the empty pad
    assert page.locator("#history li img").get_attribute("alt") == f"drawing you said is {said}"
    assert page.locator("#feedback-status").text_content() == ""  # nothing said beside the empty pad
    stored = Drawing.objects.get()
    assert (stored.feedback_label, stored.feedback_number) == ((1, None) if said == "1" else (None, "12"))


def page_that_misses_a_prediction(browser, url: str) -> tuple:
    """A page on the real stack whose websocket loses the server's predictions while `drop[0]`, as a
    push to a page being left can be lost; with the frames it sent and the close codes of its sockets."""
    page = browser.new_context().new_page()
    drop, sent, closed = [True], [], []

    def on_connect(socket) -> None:
        server = socket.connect_to_server()
        server.on_message(lambda m: None if drop[0] and json.loads(m)["type"] == "prediction" else socket.send(m))
        socket.on_message(lambda m: (sent.append(json.loads(m)), server.send(m)))
        socket.on_close(lambda code, reason: closed.append(code))

    page.route_web_socket("**/ws/recognize/", on_connect)
    page.goto(url + "/")
    page.wait_for_selector('#connection[data-state="online"]')
    draw_with_mouse(page, STROKES[7])
    until(page, lambda: Drawing.objects.filter(status="done").exists(), "the drawing predicted")
    return page, drop, sent, closed


def test_leaving_the_page_closes_its_socket_and_coming_back_asks_for_the_answer_it_missed(browser, live_server_url):
    # The page's own part in the back/forward cache, with the events a browser sends as it leaves and
    # restores the page (Playwright's Chromium runs with the cache off; the next test turns it on).
    page, drop, sent, closed = page_that_misses_a_prediction(browser, live_server_url)
    page.evaluate("window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true }))")
    until(page, lambda: closed, "the socket closed")  # an open one keeps a page out of the cache
    drop[0] = False
    page.evaluate("window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }))")
    page.wait_for_function("document.getElementById('result').dataset.state === 'answered'")
    assert page.locator("#digit").text_content() == "7" and page.locator("#history li b").text_content() == "7"
    assert [m["type"] for m in sent] == ["drawing", "status"]  # asked, not drawn again


def test_back_from_another_page_keeps_the_session_and_asks_for_the_answer_it_missed(browser, live_server_url):
    # Playwright turns Chromium's back/forward cache off; this browser has it, as a person's does.
    cached = browser.browser_type.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        ignore_default_args=["--disable-back-forward-cache"],
    )
    try:
        page, drop, sent, _ = page_that_misses_a_prediction(cached, live_server_url)
        page.evaluate("window.__before = true")
        page.goto(live_server_url + "/api/docs/")
        drop[0] = False
        page.go_back(wait_until="commit")  # a page restored from the cache fires no load event
        assert page.evaluate("window.__before === true")  # the page itself, not loaded anew
        page.wait_for_function("document.getElementById('result').dataset.state === 'answered'")
        assert page.locator("#digit").text_content() == "7" and page.locator("#history li b").text_content() == "7"
        assert [m["type"] for m in sent] == ["drawing", "status"]  # asked, not drawn again
    finally:
        cached.close()
