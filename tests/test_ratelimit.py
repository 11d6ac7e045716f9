"""Per-client limits: who a client is (behind a proxy, on IPv6), reads, feedback, open websockets.

The counters are real: the test Redis. The proxy tests run a real uvicorn built by
digitsite.stack.web_command, as `make run` and compose start it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from channels.testing import WebsocketCommunicator
from websockets.sync.client import connect

from digitsite.asgi import application
from digitsite.redis_server import free_port
from digitsite.stack import stop, wait_for_port, web_command
from recognizer import ratelimit, services
from recognizer.consumers import RecognizeConsumer
from recognizer.models import Drawing
from tests.factories import drawing
from training import samples

BASE_DIR = Path(__file__).resolve().parent.parent


def unique_ipv4() -> str:
    """An address no other test counts for (the test Redis lives for the whole session)."""
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


def a_fresh_window() -> None:
    """Wait for the next minute window when this one is about to end, so a few requests count in one."""
    left = ratelimit.WINDOW - time.time() % ratelimit.WINDOW
    if left < 5:
        time.sleep(left + 0.1)


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # the same /64: the same bucket
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),  # however it is written
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),  # the next /64: another bucket
        ("::ffff:203.0.113.7", "203.0.113.7"),  # IPv4-mapped: the IPv4 client
        ("fe80::1%eth0", "fe80::/64"),  # with a zone
        ("::1", "::/64"),
        ("", ""),  # no address known
        ("ws-test-client", "ws-test-client"),  # not an address: as given
    ],
)
def test_the_client_key_is_the_ipv4_address_or_the_ipv6_64(address, key):
    assert ratelimit.client_key(address) == key


@pytest.mark.django_db
def test_addresses_in_one_ipv6_64_share_a_bucket_over_http(client, settings):
    settings.READ_RATE_LIMIT = 2
    prefix = f"2001:db8:{uuid.uuid4().int % 0xFFFF:x}:1:"
    get = lambda address: client.get(f"/api/drawings/{uuid.uuid4()}/", REMOTE_ADDR=address)  # noqa: E731
    a_fresh_window()
    assert [get(prefix + f"{host:x}::1").status_code for host in (1, 2)] == [404, 404]
    refused = get(prefix + "3::1")  # a third address of the same /64
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert get(f"2001:db8:{uuid.uuid4().int % 0xFFFF:x}:2::1").status_code == 404  # another /64


@contextlib.contextmanager
def web_server(processes, settings, trusted: list[str]) -> Iterator[str]:
    """A real uvicorn from web_command, with TRUSTED_PROXIES = `trusted`, 2 reads a minute, 1 websocket."""
    settings.TRUSTED_PROXIES = trusted  # web_command reads the setting
    port = free_port()
    limits = {"READ_RATE_LIMIT": "2", "MAX_CONNECTIONS_PER_CLIENT": "1"}
    env = {**processes.env, **limits, "TRUSTED_PROXIES": ",".join(trusted)}
    with open(processes.logs / f"web-{port}.log", "ab") as log:
        web = subprocess.Popen(web_command("127.0.0.1", port), cwd=BASE_DIR, env=env, stdout=log, stderr=log)
    try:
        wait_for_port("127.0.0.1", port, web)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop([web])


def get_as(url: str, forwarded_for: str) -> requests.Response:
    return requests.get(f"{url}/api/drawings/{uuid.uuid4()}/", headers={"X-Forwarded-For": forwarded_for}, timeout=10)


@pytest.mark.django_db(transaction=True)
def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(processes, settings):
    one, two = unique_ipv4(), unique_ipv4()
    with web_server(processes, settings, ["127.0.0.1"]) as url:
        a_fresh_window()
        assert [get_as(url, one).status_code for _ in range(2)] == [404, 404]
        refused = get_as(url, one)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert get_as(url, two).status_code == 404  # another client behind the same proxy: not refused
        # A client cannot pick its bucket by sending the header itself through the proxy: the
        # proxy appends the address it saw, and that (the last untrusted one) is what counts.
        assert get_as(url, f"{unique_ipv4()}, {one}").status_code == 429
        # Websockets too: one open socket per client here.
        ws_url = url.replace("http", "ws", 1) + "/ws/recognize/"
        with connect(ws_url, additional_headers={"X-Forwarded-For": one}) as first:
            with connect(ws_url, additional_headers={"X-Forwarded-For": one}) as refused:
                assert '"too_many_connections"' in refused.recv(timeout=5)
            with connect(ws_url, additional_headers={"X-Forwarded-For": two}) as other:
                other.send('{"type": "status", "id": "nope"}')
                assert '"invalid_id"' in other.recv(timeout=5)
            first.send('{"type": "status", "id": "nope"}')
            assert '"invalid_id"' in first.recv(timeout=5)


@pytest.mark.django_db(transaction=True)
def test_without_trusted_proxies_x_forwarded_for_is_ignored(processes, settings):
    with web_server(processes, settings, []) as url:
        a_fresh_window()
        # Every request comes from 127.0.0.1, whatever the header says: one bucket.
        statuses = [get_as(url, unique_ipv4()).status_code for _ in range(3)]
    assert statuses == [404, 404, 429]


def test_a_trusted_proxy_that_is_not_an_address_stops_start_up():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "digitsite.settings", "TRUSTED_PROXIES": "127.0.0.1,proxy.lan"}
    command = [sys.executable, "-c", "import django; django.setup()"]
    result = subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "TRUSTED_PROXIES: 'proxy.lan' is not an address" in result.stderr


@pytest.mark.django_db
def test_reads_of_a_drawing_are_limited_per_client_with_retry_after(client, settings):
    settings.READ_RATE_LIMIT = 2
    drawing_id, address = drawing().id, unique_ipv4()
    a_fresh_window()
    statuses = [client.get(f"/api/drawings/{drawing_id}/", REMOTE_ADDR=address).status_code for _ in range(2)]
    refused = client.get(f"/api/drawings/{drawing_id}/", REMOTE_ADDR=address)
    assert statuses == [200, 200] and refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited" and 1 <= int(refused["Retry-After"]) <= 60
    assert client.get(f"/api/drawings/{drawing_id}/", REMOTE_ADDR=unique_ipv4()).status_code == 200


@pytest.mark.django_db
def test_the_drawing_limit_is_a_bucket_apart_from_reads(client, settings):
    settings.READ_RATE_LIMIT, settings.RATE_LIMIT = 1, 100
    address = unique_ipv4()
    a_fresh_window()
    assert client.get(f"/api/drawings/{uuid.uuid4()}/", REMOTE_ADDR=address).status_code == 404
    assert client.get(f"/api/drawings/{uuid.uuid4()}/", REMOTE_ADDR=address).status_code == 429
    posted = client.post("/api/drawings/", data=samples.SEVEN, content_type="image/png", REMOTE_ADDR=address)
    assert posted.status_code == 202


def feedback(client, drawing_id, label: int, address: str):
    return client.post(
        f"/api/drawings/{drawing_id}/feedback/", {"label": label}, content_type="application/json", REMOTE_ADDR=address
    )


@pytest.mark.django_db
def test_a_later_feedback_replaces_the_earlier_one_and_is_counted(client):
    drawing_id, address = drawing().id, unique_ipv4()
    assert [feedback(client, drawing_id, label, address).json()["feedback_label"] for label in (1, 2, 3)] == [1, 2, 3]
    stored = Drawing.objects.get(pk=drawing_id)
    assert stored.feedback_label == 3 and stored.feedback_count == 3


@pytest.mark.django_db
def test_feedback_counts_against_the_read_limit(client, settings):
    settings.READ_RATE_LIMIT = 2
    drawing_id, address = drawing().id, unique_ipv4()
    a_fresh_window()
    assert [feedback(client, drawing_id, label, address).status_code for label in (1, 2)] == [200, 200]
    refused = feedback(client, drawing_id, 5, address)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited" and refused["Retry-After"]
    stored = Drawing.objects.get(pk=drawing_id)
    assert stored.feedback_label == 2 and stored.feedback_count == 2  # the refused one changed nothing


@pytest.mark.django_db
def test_feedback_for_an_unknown_drawing_is_404(client):
    response = feedback(client, uuid.uuid4(), 1, unique_ipv4())
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_limits_let_requests_through_while_redis_is_down(client, settings):
    settings.READ_RATE_LIMIT, settings.REDIS_URL = 1, "redis://127.0.0.1:1/0"  # nothing listens there
    drawing_id, address = drawing().id, unique_ipv4()
    assert [client.get(f"/api/drawings/{drawing_id}/", REMOTE_ADDR=address).status_code for _ in range(3)] == [200] * 3


async def test_a_drawing_counts_against_the_rate_and_the_byte_budget_both(settings):
    settings.RATE_LIMIT, settings.BYTE_BUDGET = 2, 250
    client = unique_ipv4()
    a_fresh_window()
    assert [await ratelimit.admit(client, 100) for _ in range(2)] == [None, None]
    refused = await ratelimit.admit(client, 100)
    assert (refused.code, refused.status) == ("rate_limited", 429) and 1 <= refused.retry_after <= 60
    settings.RATE_LIMIT = 0
    over = await ratelimit.admit(client, 1)  # 301 bytes: the drawing refused for the rate spent its own
    assert (over.code, over.status) == ("byte_budget", 429) and 1 <= over.retry_after <= 3600
    settings.BYTE_BUDGET = 0
    assert await ratelimit.admit(client, 10**6) is None  # no limit set: nothing counted, nothing refused


async def socket(address: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/ws/recognize/")
    communicator.scope["client"] = (address, 1234)
    assert (await communicator.connect(timeout=5))[0]
    return communicator


@pytest.mark.django_db(transaction=True)
async def test_status_messages_are_limited_with_an_error_frame(settings):
    settings.READ_RATE_LIMIT = 2
    done = await Drawing.objects.acreate(
        image=b"x", content_type="image/png", width=1, height=1, source="ws", status="done", digit=7
    )
    communicator = await socket(unique_ipv4())
    a_fresh_window()
    answers = []
    for ref in ("a", "b", "c"):
        await communicator.send_json_to({"type": "status", "id": str(done.id), "ref": ref})
        answers.append(await communicator.receive_json_from(timeout=5))
    assert [answer["type"] for answer in answers] == ["prediction", "prediction", "error"]
    assert answers[2]["code"] == "rate_limited" and answers[2]["ref"] == "c" and answers[2]["retry_after"] >= 1
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_client_may_hold_only_so_many_websockets(settings):
    settings.MAX_CONNECTIONS_PER_CLIENT = 2
    address = unique_ipv4()
    first, second = await socket(address), await socket(address)
    third = await socket(address)  # accepted, told why, and closed
    refused = await third.receive_json_from(timeout=5)
    assert refused["type"] == "error" and refused["code"] == "too_many_connections"
    assert (await third.receive_output(timeout=5)) == {"type": "websocket.close", "code": 1013}
    other = await socket(unique_ipv4())  # another client is not affected
    await other.send_json_to({"type": "status", "id": "nope"})
    assert (await other.receive_json_from(timeout=5))["code"] == "invalid_id"
    await first.disconnect()  # a closed socket frees its slot
    fourth = await socket(address)
    assert await fourth.receive_nothing(timeout=0.3)
    for communicator in (second, fourth, other):
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_frame_the_server_fails_on_is_answered_and_a_consumer_that_dies_frees_its_slot(settings, monkeypatch):
    settings.MAX_CONNECTIONS_PER_CLIENT = 1
    address = unique_ipv4()
    communicator = await socket(address)

    def broken(message: dict) -> None:
        raise RuntimeError("a bug met by one frame")

    monkeypatch.setattr(services, "check_present", broken)
    await communicator.send_json_to({"type": "drawing", "strokes": [[[1, 2]]], "ref": "a"})
    answer = await communicator.receive_json_from(timeout=5)
    assert (answer["type"], answer["code"], answer["ref"]) == ("error", "server_error", "a")
    await communicator.send_json_to({"type": "status", "id": "nope"})  # the socket goes on
    assert (await communicator.receive_json_from(timeout=5))["code"] == "invalid_id"

    async def dies(self, *args, **kwargs) -> None:
        raise RuntimeError("a bug past every handler")

    # Channels calls no disconnect for a consumer that raised: its slot is freed all the same.
    monkeypatch.setattr(RecognizeConsumer, "receive", dies)
    await communicator.send_to(text_data="{}")
    with pytest.raises(RuntimeError):
        await communicator.wait(timeout=5)
    assert await ratelimit.open_connection(address, "next")


async def test_slots_of_a_crashed_web_process_expire(settings, monkeypatch):
    settings.MAX_CONNECTIONS_PER_CLIENT = 2
    monkeypatch.setattr(ratelimit, "CONNECTION_TTL", 1)
    client = unique_ipv4()
    # Two sockets counted by a process that then died: never closed, never refreshed.
    assert await ratelimit.open_connection(client, "dead-1") and await ratelimit.open_connection(client, "dead-2")
    assert not await ratelimit.open_connection(client, "new")
    await asyncio.sleep(1.1)
    assert await ratelimit.open_connection(client, "new")


async def test_a_live_socket_stays_counted_by_refreshing(settings, monkeypatch):
    settings.MAX_CONNECTIONS_PER_CLIENT = 1
    monkeypatch.setattr(ratelimit, "CONNECTION_TTL", 1)
    monkeypatch.setattr(ratelimit, "CONNECTION_REFRESH", 0.2)
    client = unique_ipv4()
    assert await ratelimit.open_connection(client, "live")
    holding = asyncio.create_task(ratelimit.hold_connection(client, "live"))
    try:
        await asyncio.sleep(1.5)  # past the TTL: only the refreshes keep it counted
        assert not await ratelimit.open_connection(client, "another")
    finally:
        holding.cancel()
    await ratelimit.close_connection(client, "live")
    assert await ratelimit.open_connection(client, "another")
