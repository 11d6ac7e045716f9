"""Time to review drawings by keyboard in the admin's review page, in a real browser.

    DJANGO_SUPERUSER_PASSWORD=pw .venv/bin/python manage.py createsuperuser --noinput \
        --username admin --email admin@example.com
    make run-unlimited               # in another terminal
    .venv/bin/python -m benchmarks.review_speed --count 100 --username admin --password pw

Submits COUNT MNIST-like sample digits drawn on canvases, then labels each one from the keyboard
(its true digit) and prints how long the reviewing took. Drawings it did not submit are skipped.
"""

from __future__ import annotations

import argparse
import time

import requests
from playwright.sync_api import sync_playwright

from training import samples

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def submit(url: str, count: int) -> dict[str, int]:
    images, labels = samples.digits(count, offset=1000)
    styles = list(samples.STYLES)
    truth = {}
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        body = {"image": samples.data_url(samples.digit_canvas(image, styles[i % 4]))}
        answer = requests.post(f"{url}/api/drawings/?wait=10", json=body, timeout=20).json()
        truth[answer["id"]] = int(label)
    return truth


def review(url: str, truth: dict[str, int], username: str, password: str) -> tuple[float, int]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{url}/admin/login/?next=/admin/recognizer/drawing/review/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.keyboard.press("Enter")
        page.wait_for_selector("#progress")
        started, labeled = time.perf_counter(), 0
        while page.locator("#review").count():
            current = page.locator("#review").get_attribute("data-drawing")
            if current not in truth:
                if not page.locator("#next").count():
                    break
                page.keyboard.press("ArrowRight")
            else:
                page.keyboard.press(str(truth[current]))
                labeled += 1
            page.wait_for_function(
                f"(document.getElementById('review') || {{dataset: {{}}}}).dataset.drawing !== '{current}'"
            )
        elapsed = time.perf_counter() - started
        browser.close()
    return elapsed, labeled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    truth = submit(args.url, args.count)
    elapsed, labeled = review(args.url, truth, args.username, args.password)
    each = elapsed / max(labeled, 1) * 1000
    print(f"reviewed {labeled} drawings by keyboard in {elapsed:.1f} s ({each:.0f} ms each, page load and label")
    print("included; a person's thinking time is not)")


if __name__ == "__main__":
    main()
