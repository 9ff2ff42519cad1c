"""The HTTP API in process (no sockets): submit, poll, inspect callbacks, secrets, errors."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
import pytest

from support.api import BODY_LIMIT, Api


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"x": value}
    return value


class TestSubmit:
    async def test_a_run_is_answered_201_queued_before_any_work(self, api: Api) -> None:
        response = await api.submit(
            {
                "input": {"prompt": "a cat"},
                "callback_url": "https://receiver.example/hook?token=x",
                "metadata": {"order": "A-17"},
                "client_ref": "mine-1",
            }
        )

        assert response.status_code == 201
        run = response.json()
        assert run["status_code"] == "queued"
        assert UUID(run["id"]).version == 7
        assert run["input"] == {"prompt": "a cat"}
        assert run["metadata"] == {"order": "A-17"}
        assert run["client_ref"] == "mine-1"
        assert run["callback_url"] == "https://receiver.example/hook?token=x"
        assert run["created_at"].endswith("+00:00")
        assert run["output"] is None
        assert api.woken == [True]
        stored = await api.harness.store.runs.get(UUID(run["id"]))
        assert stored is not None

    async def test_a_run_object_has_every_contract_field(self, api: Api) -> None:
        run = (await api.submit({"input": {}})).json()

        assert set(run) >= {
            "id",
            "status_code",
            "input",
            "output",
            "metadata",
            "client_ref",
            "callback_url",
            "duration_ms",
            "created_at",
            "started_at",
            "completed_at",
            "failure_code",
            "failure_message",
            "batch_id",
        }

    async def test_a_model_path_may_have_more_segments(self, api: Api) -> None:
        response = await api.submit({"input": {}}, model="acme/images/v2")

        assert response.status_code == 404
        assert response.json()["code"] == "MODEL_UNAVAILABLE"
        assert "acme/images/v2" in response.json()["message"]

    async def test_polling_shows_the_run_as_it_finishes(self, api: Api) -> None:
        run = (await api.submit({"input": {"a": 1}})).json()
        await api.harness.executor.run_until_idle()

        response = await api.client.get(f"/v1/runs/{run['id']}", headers=api.auth())

        assert response.status_code == 200
        polled = response.json()
        assert polled["status_code"] == "succeeded"
        assert polled["output"] == {"a": 1}
        assert polled["duration_ms"] >= 0


class TestBadInput:
    """Each bad input gets its documented 4xx, naming the field and the problem."""

    @pytest.mark.parametrize(
        ("body", "field", "message"),
        [
            ({"input": []}, "input", "must be a JSON object"),
            ({}, "input", "is required"),
            ({"input": {}, "callback_url": "ftp://x.example/"}, "callback_url", "http"),
            ({"input": {}, "callback_url": "https://10.0.0.7/"}, "callback_url", "private"),
            (  # full-width digits: 10.0.0.7 once normalised as the client would
                {"input": {}, "callback_url": "http://\uff11\uff10.0.0.7/"},
                "callback_url",
                "private",
            ),
            (
                {"input": {}, "callback_url": "https://x.example/" + "a" * 2048},
                "callback_url",
                "2048",
            ),
            ({"input": {}, "metadata": "x"}, "metadata", "must be a JSON object"),
            ({"input": {}, "callbackUrl": "https://x.example"}, "callbackUrl", "not a known"),
            ({"input": {}, "client_ref": "x" * 300}, "client_ref", "256"),
            ({"input": {}, "metadata": {"blob": "x" * 20_000}}, "metadata", "16384 bytes"),
            ({"input": _nested(40)}, "body", "deeper than 32"),  # 40 levels of nesting
        ],
    )
    async def test_an_invalid_field_is_a_422_naming_it(
        self, api: Api, body: dict[str, Any], field: str, message: str
    ) -> None:
        response = await api.submit(body)

        assert response.status_code == 422
        error = response.json()
        assert error["code"] == "VALIDATION_ERROR"
        [problem] = error["errors"]
        assert problem["field"] == field
        assert message in problem["message"]

    async def test_a_body_that_is_not_an_object_is_a_422(self, api: Api) -> None:
        response = await api.client.post(
            "/v1/models/runback/echo/runs", content=b"[1]", headers=api.auth()
        )
        assert response.status_code == 422
        assert response.json()["errors"] == [{"field": "body", "message": "must be a JSON object"}]

    async def test_malformed_json_is_a_400(self, api: Api) -> None:
        response = await api.client.post(
            "/v1/models/runback/echo/runs", content=b'{"input": ', headers=api.auth()
        )
        assert response.status_code == 400
        assert response.json()["code"] == "BAD_REQUEST"

    async def test_a_body_over_the_limit_is_a_413(self, api: Api) -> None:
        big = {"input": {"blob": "x" * BODY_LIMIT}}
        response = await api.submit(big)
        assert response.status_code == 413
        assert response.json()["code"] == "PAYLOAD_TOO_LARGE"

    async def test_a_body_that_is_not_json_is_a_415(self, api: Api) -> None:
        response = await api.client.post(
            "/v1/models/runback/echo/runs",
            content=b"input=1",
            headers={**api.auth(), "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 415

    async def test_an_unknown_model_is_a_404(self, api: Api) -> None:
        response = await api.submit({"input": {}}, model="acme/nothing")
        assert (response.status_code, response.json()["code"]) == (404, "MODEL_UNAVAILABLE")

    @pytest.mark.parametrize(
        "headers",
        [
            {},  # no key at all
            {"Authorization": "Bearer rb_not-a-key"},  # unknown key
            {"Authorization": "Basic dXNlcjpwYXNz"},  # not a bearer token
        ],
    )
    async def test_without_a_valid_key_every_route_is_a_401(
        self, api: Api, headers: dict[str, str]
    ) -> None:
        response = await api.client.post(
            "/v1/models/runback/echo/runs", json={"input": {}}, headers=headers
        )
        assert (response.status_code, response.json()["code"]) == (401, "UNAUTHORIZED")

    async def test_an_unknown_route_is_a_404_envelope(self, api: Api) -> None:
        response = await api.client.get("/v1/nothing-here", headers=api.auth())
        assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")

    @pytest.mark.parametrize("method", ["GET", "POST"])
    async def test_a_trailing_slash_is_a_404_envelope_naming_the_route(
        self, api: Api, method: str
    ) -> None:
        path = "/v1/runs/" if method == "GET" else "/v1/models/runback/echo/runs/"
        response = await api.client.request(method, path, json={"input": {}}, headers=api.auth())

        assert (response.status_code, response.json()["code"]) == (404, "NOT_FOUND")
        assert path.rstrip("/") in response.json()["message"]

    async def test_an_empty_and_a_blank_body_get_the_same_error(self, api: Api) -> None:
        answers = [
            await api.client.post("/v1/models/runback/echo/runs", content=body, headers=api.auth())
            for body in (b"", b"  \n\t")
        ]
        assert answers[0].status_code == answers[1].status_code == 422
        assert answers[0].json() == answers[1].json()

    @pytest.mark.parametrize(
        ("path", "body", "field", "message"),
        [
            ("/v1/runs?limit=abc", None, "limit", "must be an integer"),
            ("/v1/runs?limit=0", None, "limit", "must be at least 1"),
            ("/v1/runs?status=nope", None, "status", "must be one of 'queued'"),
            (
                "/v1/models/runback/echo/runs",
                {"input": {}, "output_url_ttl": "x"},
                "output_url_ttl",
                "must be an integer",
            ),
        ],
    )
    async def test_errors_are_in_plain_words_not_pydantics(
        self, api: Api, path: str, body: dict[str, Any] | None, field: str, message: str
    ) -> None:
        if body is None:
            response = await api.client.get(path, headers=api.auth())
        else:
            response = await api.client.post(path, json=body, headers=api.auth())

        assert response.status_code == 422
        [problem] = response.json()["errors"]
        assert problem["field"] == field
        assert problem["message"].startswith(message)
        assert "Input should" not in response.text


class TestOrganizations:
    async def test_another_organizations_run_is_a_404(self, api: Api) -> None:
        run = (await api.submit({"input": {}})).json()
        store, clock = api.harness.store, api.harness.clock
        other = await store.accounts.create_organization("other", now=clock.now())
        other_key = await store.accounts.create_api_key([other.id], now=clock.now())

        for path in (f"/v1/runs/{run['id']}", f"/v1/runs/{run['id']}/callback"):
            response = await api.client.get(path, headers=api.auth(other_key))
            assert (response.status_code, response.json()["code"]) == (404, "RUN_NOT_FOUND")

    async def test_a_malformed_run_id_is_a_404(self, api: Api) -> None:
        response = await api.client.get("/v1/runs/not-a-uuid", headers=api.auth())
        assert (response.status_code, response.json()["code"]) == (404, "RUN_NOT_FOUND")

    async def test_x_organization_id_of_a_foreign_organization_is_a_403(self, api: Api) -> None:
        store, clock = api.harness.store, api.harness.clock
        other = await store.accounts.create_organization("other", now=clock.now())
        response = await api.client.get(
            "/v1/runs/00000000-0000-7000-8000-000000000000",
            headers={**api.auth(), "X-Organization-Id": str(other.id)},
        )
        assert (response.status_code, response.json()["code"]) == (403, "PERMISSION_DENIED")


class TestCallbacks:
    async def test_the_callback_list_is_a_bare_array_with_attempts_inline(self, api: Api) -> None:
        run = (
            await api.submit({"input": {"x": 1}, "callback_url": "https://receiver.example/h"})
        ).json()
        await api.harness.executor.run_until_idle()
        await api.harness.dispatcher.deliver_due()

        response = await api.client.get(f"/v1/runs/{run['id']}/callback", headers=api.auth())

        assert response.status_code == 200
        [delivery] = response.json()
        assert set(delivery) >= {
            "id", "run_id", "callback_url", "payload_bytes", "payload", "signing_secret_id",
            "is_automatic", "status_code", "failure_reason_code", "failure_detail",
            "attempt_count", "max_attempts", "next_attempt_at", "created_at", "updated_at",
            "completed_at", "attempts",
        }  # fmt: skip
        assert delivery["status_code"] == "succeeded"
        assert delivery["payload"] == orjson.loads(delivery["payload_bytes"])
        assert delivery["payload"]["run_id"] == run["id"]
        [attempt] = delivery["attempts"]
        assert set(attempt) >= {
            "id", "delivery_id", "attempt_number", "status_code", "response_body",
            "response_time_ms", "error_message", "created_at",
        }  # fmt: skip
        assert (attempt["attempt_number"], attempt["status_code"]) == (1, 200)

    async def test_a_run_without_callbacks_has_an_empty_list(self, api: Api) -> None:
        run = (await api.submit({"input": {}})).json()
        response = await api.client.get(f"/v1/runs/{run['id']}/callback", headers=api.auth())
        assert response.json() == []


class TestSecrets:
    async def test_a_new_secret_is_shown_once_and_the_first_is_current(self, api: Api) -> None:
        response = await api.client.post(
            "/v1/callback-secrets", json={"label": "production"}, headers=api.auth()
        )

        assert response.status_code == 201
        secret = response.json()
        assert list(secret)[:3] == ["id", "label", "plain_secret"]
        assert secret["plain_secret"].startswith("whsec_")
        assert secret["plain_secret"].startswith(secret["key_prefix"])
        assert secret["is_current"] is True

    async def test_a_second_secret_is_not_current(self, api: Api) -> None:
        for label in ("old", "new"):
            response = await api.client.post(
                "/v1/callback-secrets", json={"label": label}, headers=api.auth()
            )
        assert response.json()["is_current"] is False


async def test_healthz_answers_without_a_key(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_a_queued_run_no_live_worker_serves_says_what_it_waits_for(api: Api) -> None:
    run_id = await api.run_id()

    waiting = (await api.get(f"/v1/runs/{run_id}")).json()["waiting_for"]

    assert "runback/echo" in waiting
    assert "model_unavailable" in waiting
    clock = api.harness.clock
    await api.harness.store.workers.beat("w-1", ["runback/echo"], now=clock.now())
    assert "waiting_for" not in (await api.get(f"/v1/runs/{run_id}")).json()
