"""``/v1/callback-secrets`` in process: list, get, rename, promote, delete, and what signs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from runback.core.clock import isoformat
from runback.core.signing import runflow_signature, standard_signature
from runback.outbound.sender import OutboundRequest
from support.api import Api

MISSING_ID = "01900000-0000-7000-8000-000000000000"


async def _create(api: Api, label: str | None = None) -> dict[str, Any]:
    response = await api.post("/v1/callback-secrets", {"label": label})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _patch(api: Api, secret_id: str, body: dict[str, Any]) -> httpx.Response:
    return await api.client.patch(
        f"/v1/callback-secrets/{secret_id}", json=body, headers=api.auth()
    )


async def _delete(api: Api, secret_id: str) -> httpx.Response:
    return await api.client.delete(f"/v1/callback-secrets/{secret_id}", headers=api.auth())


async def _listed(api: Api) -> list[dict[str, Any]]:
    response = await api.get("/v1/callback-secrets")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _signatures(request: OutboundRequest) -> list[str]:
    return request.headers["webhook-signature"].split(" ")


def _standard(request: OutboundRequest, plain: str) -> str:
    return standard_signature(
        plain,
        request.headers["webhook-id"],
        int(request.headers["webhook-timestamp"]),
        request.body,
    )


class TestList:
    async def test_the_list_shows_every_secret_oldest_first_on_one_page(self, api: Api) -> None:
        first = await _create(api, "old")
        second = await _create(api, "new")

        response = await api.get("/v1/callback-secrets")

        assert response.status_code == 200
        listed = response.json()
        assert listed["next"] is None
        assert [s["id"] for s in listed["items"]] == [first["id"], second["id"]]
        assert [s["label"] for s in listed["items"]] == ["old", "new"]

    async def test_the_list_never_shows_a_plain_secret(self, api: Api) -> None:
        created = await _create(api, "prod")

        response = await api.get("/v1/callback-secrets")

        assert "plain_secret" not in response.text
        assert created["plain_secret"] not in response.text

    async def test_an_organization_without_secrets_has_an_empty_list(self, api: Api) -> None:
        response = await api.get("/v1/callback-secrets")
        assert response.json() == {"items": [], "next": None}


class TestGetOne:
    async def test_one_secret_is_shown_without_its_plain_value(self, api: Api) -> None:
        created = await _create(api, "prod")

        response = await api.get(f"/v1/callback-secrets/{created['id']}")

        assert response.status_code == 200
        shown = response.json()
        assert "plain_secret" not in shown
        assert created["plain_secret"] not in response.text
        assert shown == {k: v for k, v in created.items() if k != "plain_secret"}

    @pytest.mark.parametrize(
        ("method", "secret_id"),
        [
            ("GET", MISSING_ID),  # a well-formed id that names nothing
            ("GET", "not-a-uuid"),  # malformed: not found, never a 422 or a 500
            ("PATCH", MISSING_ID),  # renaming what does not exist
            ("PATCH", "not-a-uuid"),
            ("DELETE", MISSING_ID),  # deleting what does not exist
            ("DELETE", "not-a-uuid"),
        ],
    )
    async def test_an_unknown_or_malformed_id_is_a_404_secret_not_found(
        self, api: Api, method: str, secret_id: str
    ) -> None:
        await _create(api, "prod")
        body = {"label": "x"} if method == "PATCH" else None

        response = await api.client.request(
            method, f"/v1/callback-secrets/{secret_id}", json=body, headers=api.auth()
        )

        assert (response.status_code, response.json()["code"]) == (404, "SECRET_NOT_FOUND")
        assert secret_id in response.json()["message"]


class TestPatch:
    async def test_patch_renames_a_secret_and_keeps_it_current(self, api: Api) -> None:
        created = await _create(api, "prod")
        later = api.harness.clock.advance(60)

        response = await _patch(api, created["id"], {"label": "production"})

        assert response.status_code == 200
        renamed = response.json()
        assert renamed["label"] == "production"
        assert renamed["is_current"] is True
        assert renamed["updated_at"] == isoformat(later)
        assert renamed["created_at"] == created["created_at"]
        assert "plain_secret" not in renamed

    async def test_promoting_a_secret_demotes_the_previous_current(self, api: Api) -> None:
        old = await _create(api, "old")
        new = await _create(api, "new")

        response = await _patch(api, new["id"], {"is_current": True})

        assert response.status_code == 200
        assert response.json()["is_current"] is True
        current = {s["id"]: s["is_current"] for s in await _listed(api)}
        assert current == {old["id"]: False, new["id"]: True}

    async def test_promoting_one_of_three_leaves_exactly_one_current(self, api: Api) -> None:
        secrets = [await _create(api, label) for label in ("a", "b", "c")]

        for chosen in (secrets[2], secrets[1], secrets[2]):
            await _patch(api, chosen["id"], {"is_current": True})
            listed = await _listed(api)
            assert [s["id"] for s in listed if s["is_current"]] == [chosen["id"]]

    async def test_promoting_the_current_secret_changes_nothing(self, api: Api) -> None:
        old = await _create(api, "old")
        await _create(api, "new")

        response = await _patch(api, old["id"], {"is_current": True})

        assert (response.status_code, response.json()["is_current"]) == (200, True)
        assert [s["label"] for s in await _listed(api) if s["is_current"]] == ["old"]

    @pytest.mark.parametrize(
        ("body", "field", "message"),
        [
            ({"is_current": False}, "is_current", "only be set to true"),  # demote by promoting
            ({"is_current": None, "labels": "x"}, "labels", "not a known field"),  # a typo
            ({"label": "x" * 201}, "label", "200"),  # labels are short names
            ({"label": 7}, "label", "must be a string"),  # no coercion of numbers
        ],
    )
    async def test_an_invalid_patch_is_a_422_naming_the_field(
        self, api: Api, body: dict[str, Any], field: str, message: str
    ) -> None:
        created = await _create(api, "prod")

        response = await _patch(api, created["id"], body)

        assert response.status_code == 422
        error = response.json()
        assert error["code"] == "VALIDATION_ERROR"
        [problem] = error["errors"]
        assert problem["field"] == field
        assert message in problem["message"]

    async def test_is_current_false_leaves_the_secret_current(self, api: Api) -> None:
        created = await _create(api, "prod")

        await _patch(api, created["id"], {"is_current": False})

        [listed] = await _listed(api)
        assert listed["is_current"] is True

    async def test_promoting_a_disabled_secret_is_a_409(self, api: Api) -> None:
        await _create(api, "current")
        gone = await _create(api, "gone")
        await _delete(api, gone["id"])

        response = await _patch(api, gone["id"], {"is_current": True})

        assert (response.status_code, response.json()["code"]) == (409, "CONFLICT")
        assert [s["label"] for s in await _listed(api) if s["is_current"]] == ["current"]


class TestDelete:
    async def test_delete_disables_a_secret_and_it_stays_listed(self, api: Api) -> None:
        await _create(api, "current")
        old = await _create(api, "old")
        later = api.harness.clock.advance(60)

        response = await _delete(api, old["id"])

        assert response.status_code == 200
        deleted = response.json()
        assert deleted["disabled_at"] == isoformat(later)
        assert deleted["is_current"] is False
        assert "plain_secret" not in deleted
        listed = {s["id"]: s for s in await _listed(api)}
        assert listed[old["id"]]["disabled_at"] == isoformat(later)

    async def test_deleting_the_current_secret_while_another_is_active_is_a_409(
        self, api: Api
    ) -> None:
        current = await _create(api, "current")
        await _create(api, "other")

        response = await _delete(api, current["id"])

        assert (response.status_code, response.json()["code"]) == (409, "CONFLICT")
        listed = {s["id"]: s for s in await _listed(api)}
        assert listed[current["id"]]["is_current"] is True
        assert listed[current["id"]]["disabled_at"] is None

    async def test_the_current_secret_may_go_once_the_others_are_disabled(self, api: Api) -> None:
        current = await _create(api, "current")
        other = await _create(api, "other")
        await _delete(api, other["id"])

        response = await _delete(api, current["id"])

        assert response.status_code == 200
        assert response.json()["disabled_at"] is not None

    async def test_deleting_the_only_secret_is_allowed(self, api: Api) -> None:
        only = await _create(api, "only")

        response = await _delete(api, only["id"])

        assert response.status_code == 200
        deleted = response.json()
        assert deleted["disabled_at"] is not None
        assert deleted["is_current"] is False

    async def test_deleting_a_deleted_secret_answers_it_unchanged(self, api: Api) -> None:
        only = await _create(api, "only")
        first = (await _delete(api, only["id"])).json()
        api.harness.clock.advance(60)

        again = await _delete(api, only["id"])

        assert (again.status_code, again.json()) == (200, first)


class TestSigning:
    async def test_without_any_secret_callbacks_go_unsigned(self, api: Api) -> None:
        request = await api.deliver_one()

        assert "Runflow-Signature" not in request.headers
        assert "webhook-signature" not in request.headers
        assert request.headers["webhook-id"]

    async def test_after_the_only_secret_is_deleted_callbacks_go_unsigned(self, api: Api) -> None:
        only = await _create(api, "only")
        await _delete(api, only["id"])

        request = await api.deliver_one()

        assert "Runflow-Signature" not in request.headers
        assert "webhook-signature" not in request.headers

    async def test_a_deleted_secret_never_signs_again(self, api: Api) -> None:
        old = await _create(api, "old")
        new = await _create(api, "new")
        before = await api.deliver_one()
        await _patch(api, new["id"], {"is_current": True})
        await _delete(api, old["id"])

        after = await api.deliver_one()

        assert len(_signatures(after)) == len(_signatures(before)) - 1
        assert _signatures(after) == [_standard(after, new["plain_secret"])]
        assert after.headers["Runflow-Signature"] == runflow_signature(
            new["plain_secret"], after.body
        )

    async def test_every_active_secret_signs_and_the_current_one_makes_runflow_signature(
        self, api: Api
    ) -> None:
        old = await _create(api, "old")
        new = await _create(api, "new")

        request = await api.deliver_one()

        assert sorted(_signatures(request)) == sorted(
            _standard(request, s["plain_secret"]) for s in (old, new)
        )
        assert request.headers["Runflow-Signature"] == runflow_signature(
            old["plain_secret"], request.body
        )

    async def test_last_used_at_is_set_after_a_signed_attempt(self, api: Api) -> None:
        created = await _create(api, "prod")
        assert created["last_used_at"] is None
        sent_at = api.harness.clock.advance(30)

        await api.deliver_one()

        shown = (await api.get(f"/v1/callback-secrets/{created['id']}")).json()
        assert shown["last_used_at"] == isoformat(sent_at)

    async def test_the_delivery_records_the_secret_that_signed_it(self, api: Api) -> None:
        created = await _create(api, "prod")
        run_id = await api.run_id()
        await api.harness.executor.run_until_idle()
        await api.harness.dispatcher.deliver_due()

        [delivery] = (await api.get(f"/v1/runs/{run_id}/callback")).json()

        assert delivery["signing_secret_id"] == created["id"]
        assert delivery["attempts"][0]["signing_secret_id"] == created["id"]
