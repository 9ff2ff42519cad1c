"""The receiver adapters, each in its real framework's test client: one line verifies."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

import django
import flask
import httpx
import pytest
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.test import Client
from django.urls import path
from fastapi import Depends, FastAPI

from runback.core.signing import generate_secret, signature_headers
from runback.receiver.django import verify_webhook as django_verify_webhook
from runback.receiver.flask import verify_webhook as flask_verify_webhook
from runback.receiver.starlette import VerifiedWebhook, Webhook, install

SECRET = generate_secret(lambda n: bytes(range(n)))
STRANGER_SECRET = generate_secret(lambda n: b"\x07" * n)
BODY = '{"event":"run.completed","run_id":"0193b7e4","metadata":{"note":"café"}}'.encode()
MSG_ID = "msg_0193b7e48c1a7d2e9f3a1b2c3d4e5f60"


def _signed(body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    # The adapters use the real clock: sign with it.
    timestamp = int(datetime.now(UTC).timestamp())
    return signature_headers(
        body=body, msg_id=MSG_ID, timestamp=timestamp, current=secret, active=[secret]
    )


REJECTED = [
    pytest.param({}, "not signed", id="unsigned"),
    pytest.param(_signed(secret=STRANGER_SECRET), "matches no secret", id="forged"),
    pytest.param({"Runflow-Signature": "nope"}, "64 lowercase hex", id="malformed"),
]


def _assert_rejected(status: int, body: Any, words: str) -> None:
    assert status == 401
    assert body["code"] == "INVALID_SIGNATURE"
    assert words in body["message"]
    assert body["errors"] is None


# --- FastAPI / Starlette -------------------------------------------------------------------


async def _post(app: FastAPI, body: bytes, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver.test") as client:
        return await client.post("/webhooks/runflow", content=body, headers=headers)


# At module level, as FastAPI resolves the endpoint's annotations from its globals.
verified = VerifiedWebhook([SECRET])
VerifiedBody = Annotated[Webhook, Depends(verified)]


def _fastapi_app(*, installed: bool = True) -> tuple[FastAPI, list[Webhook]]:
    app = FastAPI()
    seen: list[Webhook] = []
    if installed:
        install(app)

    @app.post("/webhooks/runflow")
    async def receive(webhook: VerifiedBody) -> dict[str, str]:
        seen.append(webhook)
        return {"event": webhook.json()["event"], "scheme": webhook.verified.scheme}

    return app, seen


async def test_fastapi_dependency_passes_a_signed_request_with_its_raw_body() -> None:
    app, seen = _fastapi_app()

    response = await _post(app, BODY, _signed())

    assert response.status_code == 200
    assert response.json() == {"event": "run.completed", "scheme": "v1"}
    assert seen[0].body == BODY
    assert seen[0].verified.webhook_id == MSG_ID


@pytest.mark.parametrize(("headers", "words"), REJECTED)
async def test_fastapi_dependency_answers_401_in_the_contracts_envelope(
    headers: dict[str, str], words: str
) -> None:
    app, seen = _fastapi_app()

    response = await _post(app, BODY, headers)

    _assert_rejected(response.status_code, response.json(), words)
    assert seen == []


async def test_fastapi_dependency_without_install_still_answers_401() -> None:
    app, seen = _fastapi_app(installed=False)

    response = await _post(app, BODY, {})

    assert response.status_code == 401
    assert "not signed" in response.json()["detail"]
    assert seen == []


async def test_fastapi_webhook_json_of_a_signed_body_that_is_not_json_is_a_400() -> None:
    app, _ = _fastapi_app()
    body = b"not json"

    response = await _post(app, body, _signed(body))

    assert response.status_code == 400


# --- Flask ---------------------------------------------------------------------------------


def _flask_app() -> tuple[flask.Flask, list[object]]:
    app = flask.Flask(__name__)
    seen: list[object] = []

    @app.post("/webhooks/runflow")
    @flask_verify_webhook([SECRET])
    def receive() -> dict[str, Any]:
        seen.append(flask.g.webhook)
        return {"event": flask.request.get_json()["event"], "scheme": flask.g.webhook.scheme}

    return app, seen


def test_flask_decorator_passes_a_signed_request_and_sets_g_webhook() -> None:
    app, seen = _flask_app()

    response = app.test_client().post(
        "/webhooks/runflow", data=BODY, content_type="application/json", headers=_signed()
    )

    assert response.status_code == 200
    assert response.get_json() == {"event": "run.completed", "scheme": "v1"}
    assert len(seen) == 1


@pytest.mark.parametrize(("headers", "words"), REJECTED)
def test_flask_decorator_answers_401_in_the_contracts_envelope(
    headers: dict[str, str], words: str
) -> None:
    app, seen = _flask_app()

    response = app.test_client().post("/webhooks/runflow", data=BODY, headers=headers)

    assert response.mimetype == "application/json"
    _assert_rejected(response.status_code, response.get_json(), words)
    assert seen == []


# --- Django --------------------------------------------------------------------------------

django_seen: list[HttpRequest] = []


@django_verify_webhook([SECRET])
def django_receive(request: HttpRequest) -> JsonResponse:
    django_seen.append(request)
    event = json.loads(request.body)["event"]
    return JsonResponse({"event": event, "scheme": request.webhook.scheme})


@django_verify_webhook([SECRET])
async def django_receive_async(request: HttpRequest) -> JsonResponse:
    django_seen.append(request)
    return JsonResponse({"scheme": request.webhook.scheme})


class urls:  # noqa: N801 (a urls module, as ROOT_URLCONF names it)
    urlpatterns: ClassVar[list[Any]] = [
        path("webhooks/runflow", django_receive),
        path("webhooks/async", django_receive_async),
    ]


@pytest.fixture(scope="module")
def django_client() -> Client:
    if not settings.configured:
        settings.configure(
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF=urls,
            MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
            SECRET_KEY="runback-tests-only",
        )
        django.setup()
    # CSRF checks on, as in production: the decorator exempts the view.
    return Client(enforce_csrf_checks=True)


@pytest.fixture(autouse=True)
def _forget_django_requests() -> None:
    django_seen.clear()


@pytest.mark.parametrize("url", ["/webhooks/runflow", "/webhooks/async"])
def test_django_decorator_passes_a_signed_request_and_sets_request_webhook(
    django_client: Client, url: str
) -> None:
    response = django_client.post(
        url, data=BODY, content_type="application/json", headers=_signed()
    )

    assert response.status_code == 200
    assert response.json()["scheme"] == "v1"
    assert django_seen[0].webhook.webhook_id == MSG_ID


@pytest.mark.parametrize(("headers", "words"), REJECTED)
def test_django_decorator_answers_401_in_the_contracts_envelope(
    django_client: Client, headers: dict[str, str], words: str
) -> None:
    response = django_client.post(
        "/webhooks/runflow", data=BODY, content_type="application/json", headers=headers
    )

    assert response["Content-Type"] == "application/json"
    _assert_rejected(response.status_code, response.json(), words)
    assert django_seen == []
