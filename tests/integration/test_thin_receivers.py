"""Thin callbacks received: each adapter, and ``runback receive``, fetch the full body from its
``output_url`` on a loopback server and hand the handler the whole event."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import django
import flask
import httpx
import orjson
import pytest
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.test import AsyncRequestFactory, RequestFactory
from fastapi import Depends, FastAPI

from runback.core.signing import generate_secret, signature_headers
from runback.core.thin import thin_body
from runback.receiver.config import ReceiveConfig
from runback.receiver.django import verify_webhook as django_verify_webhook
from runback.receiver.flask import verify_webhook as flask_verify_webhook
from runback.receiver.starlette import VerifiedWebhook, Webhook, install
from runback.store import Store
from runback.testing import ManualClock
from support.inbox import inbox_client, signed

SECRET = generate_secret()
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def full_body(file_url: str = "http://127.0.0.1:9/out.png", *, run_id: str = "run_1") -> bytes:
    """A run's whole callback with about 300 KB of output, one file among it."""
    return orjson.dumps(
        {
            "event": "run.completed",
            "run_id": run_id,
            "status": "succeeded",
            "output": {"outputs": [{"url": file_url}], "caption": "é" * 150_000},
            "metadata": {"order": "A-17"},
        }
    )


class Served:
    """A stdlib HTTP server on loopback, in a thread of its own (a sync adapter blocks the
    test's event loop while it fetches): ``full`` at ``/full``, ``PNG`` at ``/out.png``."""

    def __init__(self) -> None:
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = {
                    "/full": (served.full, "application/json"),
                    "/out.png": (PNG, "image/png"),
                }.get(self.path)
                if found is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", found[1])
                self.send_header("Content-Length", str(len(found[0])))
                self.end_headers()
                self.wfile.write(found[0])

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.full = full_body(f"{self.url}/out.png")

    def thin(self, full: bytes, path: str = "/full") -> bytes:
        made = thin_body(full, self.url + path)
        assert made is not None
        return made


@pytest.fixture
def served() -> Iterator[Served]:
    box = Served()
    thread = threading.Thread(target=box.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        box.httpd.shutdown()
        box.httpd.server_close()
        thread.join()


def _headers(body: bytes) -> dict[str, str]:
    timestamp = int(datetime.now(UTC).timestamp())
    return signature_headers(
        body=body, msg_id="msg_thin", timestamp=timestamp, current=SECRET, active=[SECRET]
    )


# --- FastAPI / Starlette -------------------------------------------------------------------

# At module level, as FastAPI resolves the endpoint's annotations from its globals.
verified = VerifiedWebhook([SECRET])
VerifiedBody = Annotated[Webhook, Depends(verified)]
verified_small = VerifiedWebhook([SECRET], max_full_body_bytes=1000)
VerifiedSmallBody = Annotated[Webhook, Depends(verified_small)]


def _fastapi_app(*, small: bool = False) -> tuple[FastAPI, list[Webhook]]:
    app = FastAPI()
    install(app)
    seen: list[Webhook] = []

    if small:

        @app.post("/webhooks/runflow")
        async def receive_small(webhook: VerifiedSmallBody) -> None:
            seen.append(webhook)

    else:

        @app.post("/webhooks/runflow")
        async def receive(webhook: VerifiedBody) -> dict[str, str]:
            seen.append(webhook)
            return {"event": webhook.json()["event"]}

    return app, seen


async def _post(app: FastAPI, body: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver.test") as client:
        return await client.post("/webhooks/runflow", content=body, headers=_headers(body))


async def test_fastapi_hands_the_handler_the_full_body_of_a_thin_callback(
    served: Served,
) -> None:
    app, seen = _fastapi_app()
    full = served.full

    response = await _post(app, served.thin(full))

    assert response.status_code == 200, response.text
    assert seen[0].body == full
    assert seen[0].json()["output"]["caption"] == "é" * 150_000


async def test_fastapi_answers_502_when_the_full_body_is_another_event(served: Served) -> None:
    app, seen = _fastapi_app()
    # The thin body names run_2; the URL serves run_1's.
    thin = served.thin(full_body(run_id="run_2"))

    response = await _post(app, thin)

    assert response.status_code == 502
    assert response.json()["code"] == "THIN_BODY_UNAVAILABLE"
    assert "run_id" in response.json()["message"]
    assert seen == []


async def test_fastapi_answers_502_when_the_full_body_cannot_be_fetched(served: Served) -> None:
    app, seen = _fastapi_app()
    full = served.full

    response = await _post(app, served.thin(full, "/gone"))

    assert response.status_code == 502
    assert "HTTP 404" in response.json()["message"]
    assert seen == []


async def test_a_full_body_over_the_limit_is_refused(served: Served) -> None:
    app, seen = _fastapi_app(small=True)

    response = await _post(app, served.thin(served.full))

    assert response.status_code == 502
    assert "over 1000 bytes" in response.json()["message"]
    assert seen == []


# --- Flask ---------------------------------------------------------------------------------


def test_flask_hands_the_view_the_full_body_of_a_thin_callback(served: Served) -> None:
    app = flask.Flask(__name__)
    seen: list[Any] = []

    @app.post("/webhooks/runflow")
    @flask_verify_webhook([SECRET])
    def receive() -> dict[str, Any]:
        seen.append((flask.request.get_data(), flask.request.get_json()))
        return {"ok": True}

    full = served.full
    thin = served.thin(full)

    response = app.test_client().post(
        "/webhooks/runflow", data=thin, content_type="application/json", headers=_headers(thin)
    )

    assert response.status_code == 200, response.get_data()
    [(data, event)] = seen
    assert data == full
    assert event == json.loads(full)


def test_flask_answers_502_in_the_envelope_when_the_full_body_is_missing(
    served: Served,
) -> None:
    app = flask.Flask(__name__)

    @app.post("/webhooks/runflow")
    @flask_verify_webhook([SECRET])
    def receive() -> dict[str, Any]:
        raise AssertionError("not reached")

    full = served.full
    thin = served.thin(full, "/gone")

    response = app.test_client().post(
        "/webhooks/runflow", data=thin, content_type="application/json", headers=_headers(thin)
    )

    assert response.status_code == 502
    assert response.get_json()["code"] == "THIN_BODY_UNAVAILABLE"


# --- Django --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def django_ready() -> None:
    if not settings.configured:
        settings.configure(ALLOWED_HOSTS=["testserver"], SECRET_KEY="runback-tests-only")
        django.setup()


def test_django_hands_the_view_the_full_body_of_a_thin_callback(
    served: Served, django_ready: None
) -> None:
    seen: list[bytes] = []

    @django_verify_webhook([SECRET])
    def receive(request: HttpRequest) -> JsonResponse:
        seen.append(request.body)
        return JsonResponse({"event": json.loads(request.body)["event"]})

    full = served.full
    thin = served.thin(full)
    request = RequestFactory().post(
        "/webhooks/runflow", data=thin, content_type="application/json", headers=_headers(thin)
    )

    response = receive(request)

    assert response.status_code == 200
    assert seen == [full]


async def test_django_async_views_get_the_full_body_too(served: Served, django_ready: None) -> None:
    seen: list[bytes] = []

    @django_verify_webhook([SECRET])
    async def receive(request: HttpRequest) -> JsonResponse:
        seen.append(request.body)
        return JsonResponse({})

    full = served.full
    thin = served.thin(full)
    request = AsyncRequestFactory().post(
        "/webhooks/runflow", data=thin, content_type="application/json", headers=_headers(thin)
    )

    response = await receive(request)

    assert response.status_code == 200
    assert seen == [full]


# --- runback receive -----------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    # The verifier judges webhook-timestamp by the wall clock: start the manual one there.
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


async def test_runback_receive_records_the_full_event_and_copies_its_files(
    store: Store, clock: ManualClock, served: Served
) -> None:
    full = served.full
    thin = served.thin(full)
    config = ReceiveConfig(global_secrets=(SECRET,))

    async with inbox_client(store, clock, config=config) as box:
        response = await box.post("runflow", thin, signed(thin, SECRET, clock=clock))
        assert response.status_code == 200, response.text
        event_id = response.json()["event_id"]
        await box.copier.copy_due()
        event = await box.event(event_id)

    assert (event["event"], event["run_id"], event["status"]) == (
        "run.completed",
        "run_1",
        "succeeded",
    )
    [receipt] = event["receipts"]
    assert receipt["body"].encode() == full
    [copy] = event["copies"]
    assert (copy["source_url"], copy["state"]) == (served.url + "/out.png", "copied")
    assert copy["size"] == len(PNG)


async def test_runback_receive_answers_502_when_the_full_body_cannot_be_had(
    store: Store, clock: ManualClock, served: Served
) -> None:
    full = served.full
    thin = served.thin(full, "/gone")
    config = ReceiveConfig(global_secrets=(SECRET,))

    async with inbox_client(store, clock, config=config) as box:
        response = await box.post("runflow", thin, signed(thin, SECRET, clock=clock))
        listed = await box.events()

    assert response.status_code == 502
    assert response.json()["code"] == "THIN_BODY_UNAVAILABLE"
    assert listed == []  # nothing acknowledged, nothing kept: the sender tries again
