"""The receiver's dashboard over plain HTTP (the receive app in process, copies fetched from a
loopback file server): who may see it, what each page shows, and replaying from it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import web

from runback.core.signing import generate_secret
from runback.receiver.config import ReceiveConfig
from runback.receiver.handlers import HandlerRegistry, ReceivedEvent
from runback.store import Store
from runback.testing import ManualClock
from support.dashboard import PREFIX, csrf_token, login
from support.inbox import Inbox, inbox_client, signed
from support.receivers import LoopbackReceiver, answer

SECRET = generate_secret()
SIGNED = ReceiveConfig(global_secrets=(SECRET,))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class Flaky:
    """A handler that raises while ``broken``."""

    def __init__(self) -> None:
        self.broken = False
        self.seen: list[str] = []

    async def __call__(self, event: ReceivedEvent) -> None:
        if self.broken:
            raise RuntimeError("the orders database is down")
        self.seen.append(event.dedupe_key)


@pytest.fixture
def clock() -> ManualClock:
    # The verifier judges webhook-timestamp by the wall clock: start the manual one there.
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def files() -> AsyncIterator[LoopbackReceiver]:
    """Serves a PNG at ``/ok/...``; 404 elsewhere."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/ok/"):
            return await answer(200, PNG, {"Content-Type": "image/png"})(request)
        return await answer(404, b"no such file")(request)

    async with LoopbackReceiver(handle) as server:
        yield server


@pytest.fixture
def flaky() -> Flaky:
    return Flaky()


@pytest.fixture
async def box(store: Store, clock: ManualClock, flaky: Flaky) -> AsyncIterator[Inbox]:
    handlers = HandlerRegistry()
    handlers.on("run.completed")(flaky)
    async with inbox_client(store, clock, config=SIGNED, handlers=handlers) as inbox:
        yield inbox


async def send(box: Inbox, payload: dict[str, Any], *, msg_id: str) -> str:
    body = orjson.dumps(payload)
    response = await box.post("runflow", body, signed(body, SECRET, clock=box.clock, msg_id=msg_id))
    assert response.status_code == 200, response.text
    event_id: str = response.json()["event_id"]
    return event_id


def completed(run_id: str, *urls: str, status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    outputs = [{"url": url} for url in urls]
    return {
        "event": "run.completed",
        "run_id": run_id,
        "status": status,
        "output": {"outputs": outputs},
    } | extra


async def page(box: Inbox, path: str) -> str:
    answer = await box.client.get(PREFIX + path)
    assert answer.status_code == 200, answer.text
    return answer.text


async def fail_for_good(box: Inbox, event_id: str) -> None:
    """Run the event's handler through every retry of its schedule until it is ``failed``."""
    for _ in range(20):
        await box.runner.handle_due()
        if (await box.event(event_id))["handler"]["state"] == "failed":
            return
        box.clock.advance(700)  # past the longest delay of the schedule
    raise AssertionError("the handler never ended failed")


# --- who may see it -----------------------------------------------------------------------


async def test_without_a_session_a_page_sends_the_browser_to_the_login_form(box: Inbox) -> None:
    answer = await box.client.get(f"{PREFIX}/events?source=runflow")

    assert answer.status_code == 303
    assert (
        answer.headers["location"]
        == f"{PREFIX}/login?next=%2Fdashboard%2Fevents%3Fsource%3Drunflow"
    )


async def test_without_a_session_an_htmx_poll_is_told_where_to_log_in(box: Inbox) -> None:
    answer = await box.client.get(f"{PREFIX}/events", headers={"HX-Request": "true"})

    assert answer.status_code == 401
    assert answer.headers["hx-redirect"].startswith(f"{PREFIX}/login?next=")


async def test_the_inbox_api_key_logs_in_and_lands_on_the_events(box: Inbox) -> None:
    answer = await login(box.client, box.key)

    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PREFIX}/events"
    assert "Received events" in await page(box, "/events")


async def test_an_unknown_key_does_not_log_in(box: Inbox) -> None:
    answer = await login(box.client, "rb_live_not_a_key")

    assert answer.status_code == 401
    assert (await box.client.get(f"{PREFIX}/events")).status_code == 303


@pytest.mark.parametrize(
    "token",
    [
        None,  # no token at all
        "forged",  # a token, but not the session's
    ],
)
async def test_a_replay_without_the_session_s_csrf_token_is_refused_and_changes_nothing(
    box: Inbox, flaky: Flaky, token: str | None
) -> None:
    flaky.broken = True
    event_id = await send(box, completed("run_csrf"), msg_id="msg_csrf")
    await fail_for_good(box, event_id)
    await login(box.client, box.key)

    data = {} if token is None else {"csrf_token": token}
    answer = await box.client.post(f"{PREFIX}/events/{event_id}/replay", data=data)

    assert answer.status_code == 403
    assert "<code>csrf_token</code>" in answer.text
    assert (await box.event(event_id))["handler"]["state"] == "failed"


# --- what the pages show -------------------------------------------------------------------


async def test_the_events_list_filters_by_source_type_status_handler_and_time(
    box: Inbox, flaky: Flaky
) -> None:
    early = await send(box, completed("run_a", status="failed"), msg_id="msg_a")
    box.clock.advance(3600)
    late = await send(box, completed("run_b"), msg_id="msg_b")
    started = await send(box, {"event": "run.started", "run_id": "run_c"}, msg_id="msg_c")
    await box.runner.handle_due()
    await login(box.client, box.key)
    cut = (box.clock.now() - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S")

    def shown(html: str) -> set[str]:
        return {e for e in (early, late, started) if e in html}

    assert shown(await page(box, "/events")) == {early, late, started}
    assert shown(await page(box, "/events?status=failed")) == {early}
    assert shown(await page(box, "/events?event=run.started")) == {started}
    assert shown(await page(box, "/events?handler=succeeded")) == {early, late}
    assert shown(await page(box, "/events?handler=none")) == {started}
    assert shown(await page(box, f"/events?received_after={cut}")) == {late, started}
    assert shown(await page(box, f"/events?received_before={cut}")) == {early}
    assert shown(await page(box, "/events?source=elsewhere")) == set()


async def test_only_trouble_lists_failed_handlers_and_failing_copies(
    box: Inbox, flaky: Flaky, files: LoopbackReceiver
) -> None:
    fine = await send(box, completed("run_ok", files.url_for("/ok/a.png")), msg_id="msg_ok")
    missing = await send(box, completed("run_404", files.url_for("/gone.png")), msg_id="msg_404")
    await box.copier.copy_due()
    await box.runner.handle_due()
    flaky.broken = True
    failing = await send(box, completed("run_bad"), msg_id="msg_bad")
    await fail_for_good(box, failing)
    await login(box.client, box.key)

    html = await page(box, "/events?troubled=true")

    assert missing in html
    assert failing in html
    assert fine not in html


async def test_a_time_that_is_not_a_time_is_said_next_to_its_field(box: Inbox) -> None:
    await login(box.client, box.key)

    html = await page(box, "/events?received_after=yesterday")

    assert "received_after: &#39;yesterday&#39; is not a time" in html


async def test_a_poll_of_the_list_answers_its_table_only(box: Inbox) -> None:
    event_id = await send(box, completed("run_poll"), msg_id="msg_poll")
    await login(box.client, box.key)

    answer = await box.client.get(f"{PREFIX}/events", headers={"HX-Request": "true"})

    assert answer.status_code == 200
    assert answer.text.lstrip().startswith('<div id="events-table"')
    assert event_id in answer.text
    assert "<html" not in answer.text


async def test_an_event_page_shows_its_payload_verification_sequence_copies_and_handler(
    box: Inbox, files: LoopbackReceiver
) -> None:
    later = await send(box, completed("run_seq", sequence=9), msg_id="msg_9")
    event_id = await send(
        box,
        completed(
            "run_seq",
            files.url_for("/ok/cat.png") + "?X-Amz-Signature=s3cr3t",
            files.url_for("/missing.png"),
            sequence=4,
        ),
        msg_id="msg_4",
    )
    await box.copier.copy_due()
    await box.runner.handle_due()
    await login(box.client, box.key)

    html = await page(box, f"/events/{event_id}")

    assert "signature verified (Standard Webhooks v1, HMAC-SHA256)" in html
    assert re.search(r'id="event-sequence">4<', html)
    assert "yes: a later event of its run had come first" in html
    assert "&#34;run_id&#34;: &#34;run_seq&#34;" in html  # the payload, indented and escaped
    [copied, failed] = re.findall(r'<tr class="copy">(.*?)</tr>', html, re.S)
    assert "status-copied" in copied
    assert "cat.png" in copied
    assert "status-pending" in failed
    assert "404" in failed
    assert "s3cr3t" not in copied  # a presigned URL's credentials stay out of the table
    assert "test_receiver_dashboard.Flaky" in html
    assert re.search(r'id="handler-state"><span class="status status-succeeded"', html)
    later_html = await page(box, f"/events/{later}")
    assert re.search(r'id="event-stale">no<', later_html)


async def test_an_unknown_event_is_a_404_page_and_the_inbox_api_keeps_its_json(box: Inbox) -> None:
    await login(box.client, box.key)

    for event_id in ("0b6c1c1e-5a4e-4c55-9a62-2f3c1a4a8d11", "not-an-id"):
        answer = await box.client.get(f"{PREFIX}/events/{event_id}")
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")
        assert f"there is no event {event_id}" in answer.text
        api = await box.client.get(f"/v1/inbox/{event_id}", headers=box.auth())
        assert api.json()["code"] == "EVENT_NOT_FOUND"


# --- acting on it ----------------------------------------------------------------------------


async def test_a_failed_handler_replayed_from_its_page_runs_again_and_succeeds(
    box: Inbox, flaky: Flaky
) -> None:
    flaky.broken = True
    event_id = await send(box, completed("run_replay"), msg_id="msg_replay")
    await fail_for_good(box, event_id)
    await login(box.client, box.key)
    html = await page(box, f"/events/{event_id}")
    assert "RuntimeError: the orders database is down" in html
    flaky.broken = False

    token = await csrf_token(box.client, f"/events/{event_id}")
    answer = await box.client.post(f"{PREFIX}/events/{event_id}/replay", data={"csrf_token": token})

    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PREFIX}/events/{event_id}"
    assert "replayed" in await page(box, f"/events/{event_id}")  # the flash, once
    await box.runner.handle_due()
    html = await page(box, f"/events/{event_id}")
    assert re.search(r'id="handler-state"><span class="status status-succeeded"', html)
    assert flaky.seen == [(await box.event(event_id))["dedupe_key"]]


async def test_the_expected_runs_page_lists_expectations_by_state(box: Inbox) -> None:
    now = box.clock.now()
    await box.store.expected.expect(
        "runflow", "run_w", expected_by=now + timedelta(hours=1), now=now
    )
    await login(box.client, box.key)

    assert "run_w" in await page(box, "/expected")
    assert "run_w" in await page(box, "/expected?state=waiting")
    assert "run_w" not in await page(box, "/expected?state=arrived")
    assert "is not a state of an expected run" in await page(box, "/expected?state=later")
