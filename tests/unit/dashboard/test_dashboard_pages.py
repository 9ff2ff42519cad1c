"""The provider's dashboard pages and actions, over the in-process API (no sockets): what
each page shows, and what each POST changes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import UUID

import pytest

from runback.core.delivery import SendResult
from runback.outbound.sender import OutboundRequest
from runback.store import Store
from runback.testing import ManualClock, respond
from support.api import Api, api_client
from support.dashboard import PREFIX, csrf_token, login

DOWN = "https://down.example/hook"


class Switch:
    """A receiver twin that fails with 500 until it is turned on."""

    def __init__(self) -> None:
        self.up = False

    def __call__(self, request: OutboundRequest) -> SendResult:
        return respond(200, '{"ok": true}') if self.up else respond(500, "receiver is down")


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
async def api(store: Store, clock: ManualClock, switch: Switch) -> AsyncIterator[Api]:
    async with api_client(store, clock, handler=switch) as client:
        await login(client.client, client.key)
        yield client


async def _failed_run(api: Api, body: dict[str, object] | None = None) -> str:
    """A run whose callback failed every attempt of the harness's ladder."""
    run_id = await api.run_id(body or {"input": {"n": 1}, "callback_url": DOWN})
    await api.harness.executor.run_until_idle()
    for _ in range(5):  # the harness policy gives four attempts
        await api.harness.dispatcher.deliver_due()
        api.harness.clock.advance(5)
    return run_id


async def _post(api: Api, path: str, data: dict[str, str] | None = None) -> str:
    """POST a dashboard form with the session's token; answers the page redirected to."""
    token = await csrf_token(api.client)
    answer = await api.client.post(PREFIX + path, data={"csrf_token": token, **(data or {})})
    assert answer.status_code == 303, answer.text
    page = await api.client.get(answer.headers["location"])
    assert page.status_code == 200, page.text
    return page.text


async def test_the_runs_list_filters_by_status_model_and_client_ref(api: Api) -> None:
    kept = await api.run_id({"input": {}, "client_ref": "order-7"})
    other = await api.run_id({"input": {}, "client_ref": "order-8"})

    page = await api.client.get(f"{PREFIX}/runs?client_ref=order-7&status=queued")
    assert kept in page.text
    assert other not in page.text
    none = await api.client.get(f"{PREFIX}/runs?model=runback/sleep")
    assert kept not in none.text
    assert "No runs match" in none.text
    ended = await api.client.get(f"{PREFIX}/runs?status=succeeded")
    assert kept not in ended.text


async def test_a_time_range_that_is_not_a_time_is_said_next_to_its_field(api: Api) -> None:
    page = await api.client.get(f"{PREFIX}/runs?created_after=yesterday")

    assert page.status_code == 200
    assert "created_after: &#39;yesterday&#39; is not a time" in page.text


async def test_the_runs_table_alone_answers_htmxs_poll(api: Api) -> None:
    run_id = await api.run_id()

    fragment = await api.client.get(f"{PREFIX}/runs", headers={"HX-Request": "true"})

    assert run_id in fragment.text
    assert "<html" not in fragment.text
    assert 'hx-trigger="every 3s"' in fragment.text


async def test_a_run_page_shows_input_output_timeline_and_every_attempt(api: Api) -> None:
    run_id = await _failed_run(
        api, {"input": {"picture": "https://cdn.example/cat.png?sig=1"}, "callback_url": DOWN}
    )

    page = (await api.client.get(f"{PREFIX}/runs/{run_id}")).text

    assert "https://cdn.example/cat.png?sig=1" in page
    assert '<img src="https://cdn.example/cat.png?sig=1"' in page  # echo's output previewed
    assert page.count('<td class="num">500</td>') == 4  # four attempts, each answered 500
    assert "receiver is down" in page  # the response excerpt
    assert "<td>http_5xx</td>" in page  # each attempt's failure class
    assert "attempt 4" in page
    assert "submitted" in page


async def test_redelivering_a_failed_delivery_sends_it_again(api: Api, switch: Switch) -> None:
    run_id = await _failed_run(api)
    [(failed, _)] = await api.harness.deliveries(UUID(run_id))
    switch.up = True

    page = await _post(api, f"/deliveries/{failed.id}/redeliver")

    assert "is queued again" in page
    await api.harness.dispatcher.deliver_due()
    found = await api.harness.deliveries(UUID(run_id))
    assert [d.status.value for d, _ in found] == ["failed", "succeeded"]
    again = (await api.client.get(f"{PREFIX}/runs/{run_id}")).text
    assert "is queued again" not in again  # a flash is shown once


async def test_cancelling_a_queued_run_ends_it(api: Api) -> None:
    run_id = await api.run_id()

    page = await _post(api, f"/runs/{run_id}/cancel")

    assert f"Run {run_id} is canceled." in page
    assert (await api.harness.run(UUID(run_id))).status.value == "canceled"
    assert "Cancel run" not in page


async def test_a_created_secret_is_shown_once(api: Api) -> None:
    token = await csrf_token(api.client)

    created = await api.client.post(
        f"{PREFIX}/secrets", data={"csrf_token": token, "label": "rotation", "type": "hmac"}
    )

    assert created.status_code == 201
    found = re.search(r'id="created-secret">(whsec_[^<]+)<', created.text)
    assert found is not None
    listed = await api.client.get(f"{PREFIX}/secrets")
    assert "rotation" in listed.text
    assert found[1] not in listed.text
    assert found[1][:12] in listed.text or "whsec_" in listed.text  # only its prefix


async def test_a_secret_is_promoted_then_the_old_one_disabled(api: Api) -> None:
    org = api.harness.organization_id
    token = await csrf_token(api.client)
    for label in ("old", "new"):  # the first of its type becomes current
        await api.client.post(f"{PREFIX}/secrets", data={"csrf_token": token, "label": label})
    by_label = {s.label: s for s in await api.harness.store.secrets.list(org)}
    old, new = by_label["old"], by_label["new"]

    refused = await _post(api, f"/secrets/{old.id}/disable")
    assert "Not changed" in refused  # the current one goes after another is promoted
    assert "is current" in await _post(api, f"/secrets/{new.id}/promote")
    assert "is disabled" in await _post(api, f"/secrets/{old.id}/disable")

    states = {
        s.id: (s.is_current, s.disabled_at is not None)
        for s in await api.harness.store.secrets.list(org)
    }
    assert states == {old.id: (False, True), new.id: (True, False)}


async def test_destinations_show_rates_backlog_and_are_disabled_and_enabled(
    api: Api, switch: Switch
) -> None:
    await _failed_run(api)
    switch.up = True
    await api.deliver_one()  # to receiver.example, which answers 200

    page = (await api.client.get(f"{PREFIX}/destinations")).text
    assert "down.example:443" in page
    assert "receiver.example:443" in page
    assert "0 %" in page
    assert "100 %" in page

    disabled = await _post(api, "/destinations/disable", {"host": "receiver.example:443"})
    assert "receiver.example:443 is disabled" in disabled
    troubled = await api.harness.store.destinations.troubled()
    assert troubled["receiver.example:443"].disabled_at is not None
    enabled = await _post(api, "/destinations/enable", {"host": "receiver.example:443"})
    assert "is enabled" in enabled
    assert "receiver.example:443" not in await api.harness.store.destinations.troubled()


async def test_a_host_of_no_callback_of_this_organization_is_left_alone(api: Api) -> None:
    page = await _post(api, "/destinations/disable", {"host": "elsewhere.example:443"})

    assert "is not a destination of this organization" in page
    assert not await api.harness.store.destinations.troubled()


async def test_a_recovery_queues_failed_deliveries_and_shows_its_progress(
    api: Api, switch: Switch
) -> None:
    await _failed_run(api)
    await _failed_run(api)
    switch.up = True
    now = api.harness.clock.now()
    form = {
        "created_from": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "created_to": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
    }

    page = await _post(api, "/recoveries", form)

    assert "Recovery started: 2 queued, 0 skipped." in page
    assert 'id="recovery-delivered">0<' in page
    assert "hx-trigger" in page
    recovery_url = re.search(rf'hx-get="({PREFIX}/recoveries/[^"]+)"', page)
    assert recovery_url is not None
    await api.harness.dispatcher.deliver_due()
    done = (await api.client.get(recovery_url[1])).text
    assert 'id="recovery-delivered">2<' in done
    assert "hx-trigger" not in done


async def test_a_recovery_without_its_range_names_the_fields(api: Api) -> None:
    token = await csrf_token(api.client)

    answer = await api.client.post(
        f"{PREFIX}/recoveries", data={"csrf_token": token, "created_from": "soon"}
    )

    assert answer.status_code == 422
    assert "created_from: &#39;soon&#39; is not a time" in answer.text
    assert "created_to: required" in answer.text


async def test_a_test_callback_tells_how_the_receiver_answered(api: Api, switch: Switch) -> None:
    switch.up = True

    page = await _post(api, "/callback-tests", {"url": "https://receiver.example/hook"})

    assert "Test callback to https://receiver.example/hook answered HTTP 200" in page
    [sent] = api.harness.sender.requests
    assert b"test.ping" in sent.body


async def test_batches_are_listed_and_shown_with_their_items(api: Api) -> None:
    created = await api.post("/v1/models/runback/echo/batches", {"input": [{"a": 1}, {"a": 2}]})
    assert created.status_code == 201, created.text
    batch_id = created.json()["id"]

    listed = (await api.client.get(f"{PREFIX}/batches")).text
    assert batch_id in listed
    shown = (await api.client.get(f"{PREFIX}/batches/{batch_id}")).text
    assert shown.count(f'href="{PREFIX}/runs/') == 2


async def test_every_page_has_the_nav_a_main_landmark_and_security_headers(api: Api) -> None:
    for path in ("/runs", "/batches", "/destinations", "/secrets", "/callbacks"):
        page = await api.client.get(PREFIX + path)

        assert page.status_code == 200, path
        assert f'<a href="{PREFIX}{path}" aria-current="page">' in page.text
        assert '<main id="main"' in page.text
        assert re.search(r"<title>[^<]+ · runback dashboard</title>", page.text), path
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


async def test_an_output_file_that_is_an_image_is_previewed(api: Api) -> None:
    run_id = await api.run_id({"input": {"width": 32, "height": 16}}, model="runback/thumbnail")
    await api.harness.executor.run_until_idle()

    page = (await api.client.get(f"{PREFIX}/runs/{run_id}")).text

    found = re.search(r'<img src="([^"]+)"', page)
    assert found is not None, page
    assert found[1].startswith("http://runback.test/")  # the run's own file URL, signed


async def test_a_run_of_no_one_is_a_404_page_and_the_api_keeps_its_json(api: Api) -> None:
    page = await api.client.get(f"{PREFIX}/runs/01a24bdf-0000-7000-8000-000000000000")
    json = await api.get("/v1/runs/01a24bdf-0000-7000-8000-000000000000")

    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "there is no run" in page.text
    assert json.status_code == 404
    assert json.json()["code"] == "RUN_NOT_FOUND"


async def test_a_form_field_out_of_bounds_is_named_on_a_422_page(api: Api) -> None:
    token = await csrf_token(api.client)

    answer = await api.client.post(
        f"{PREFIX}/secrets", data={"csrf_token": token, "label": "x" * 201}
    )

    assert answer.status_code == 422
    assert "<code>label</code>" in answer.text


async def test_what_a_run_carries_is_escaped_never_markup(api: Api) -> None:
    hostile = "<script>alert(1)</script>"
    run_id = await api.run_id({"input": {"note": hostile}, "client_ref": hostile})
    await api.harness.executor.run_until_idle()

    listed = (await api.client.get(f"{PREFIX}/runs")).text
    shown = (await api.client.get(f"{PREFIX}/runs/{run_id}")).text

    for page in (listed, shown):
        assert hostile not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_the_callbacks_page_lists_failed_deliveries_to_redeliver(
    api: Api, switch: Switch
) -> None:
    run_id = await _failed_run(api)
    switch.up = True
    await api.deliver_one()  # one that succeeds is not listed

    page = (await api.client.get(f"{PREFIX}/callbacks")).text

    assert page.count(f'href="{PREFIX}/runs/') == 1
    assert f'href="{PREFIX}/runs/{run_id}"' in page
    [(failed, _)] = await api.harness.deliveries(UUID(run_id))
    assert f'action="{PREFIX}/deliveries/{failed.id}/redeliver"' in page
