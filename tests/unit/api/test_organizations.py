"""Organization boundaries: what a key may see and touch, and for which organization it acts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest

from runback.core.ids import visible_prefix
from runback.core.signing import runflow_signature, standard_signature
from support.api import Api

ABSENT_ORGANIZATION = "01900000-0000-7000-8000-0000000000aa"


@dataclass(frozen=True)
class Owned:
    """What the API's default organization holds: ids to aim another organization's key at."""

    run: str  # ended, its callback delivered: may be redelivered
    queued: str  # not started: may be cancelled
    delivery: str
    secret: str


@pytest.fixture
async def owned(api: Api) -> Owned:
    secret = (await api.post("/v1/callback-secrets", {"label": "prod"})).json()["id"]
    run = await api.run_id()
    await api.harness.executor.run_until_idle()
    await api.harness.dispatcher.deliver_due()
    [delivery] = (await api.get(f"/v1/runs/{run}/callback")).json()
    queued = await api.run_id()
    return Owned(run=run, queued=queued, delivery=delivery["id"], secret=secret)


async def _request(
    api: Api,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await api.client.request(
        method, path, json=body, headers={**api.auth(key), **(headers or {})}
    )


async def _submit(
    api: Api, body: dict[str, Any], *, key: str | None, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await _request(
        api, "POST", "/v1/models/runback/echo/runs", body, key=key, headers=headers
    )


async def _fill(api: Api, key: str | None) -> set[str]:
    """A run (``client_ref`` "mine") and a secret for the key's organization; their ids."""
    run = await _submit(api, {"input": {}, "client_ref": "mine"}, key=key)
    secret = await _request(api, "POST", "/v1/callback-secrets", {"label": "x"}, key=key)
    return {run.json()["id"], secret.json()["id"]}


async def _state(api: Api, owned: Owned) -> list[Any]:
    """Everything the owner sees of its items, to tell whether a request changed any."""
    paths = [
        f"/v1/runs/{owned.run}",
        f"/v1/runs/{owned.queued}",
        f"/v1/runs/{owned.run}/callback",
        f"/v1/runs/{owned.queued}/callback",
        "/v1/callback-secrets",
    ]
    return [(await api.get(path)).json() for path in paths]


# Every route that names one item of an organization.
ONE_ITEM_ROUTES = [
    pytest.param("GET", "/v1/runs/{run}", None, "RUN_NOT_FOUND", id="get run"),
    pytest.param("GET", "/v1/runs/{run}/callback", None, "RUN_NOT_FOUND", id="run callbacks"),
    # A queued run: the owner's cancel would end it.
    pytest.param("POST", "/v1/runs/{queued}/cancel", None, "RUN_NOT_FOUND", id="cancel"),
    # An ended run with a callback: the owner's redelivery would be a 201.
    pytest.param(
        "POST", "/v1/runs/{run}/callback-redeliveries", None, "RUN_NOT_FOUND", id="redeliver"
    ),
    pytest.param(
        "GET", "/v1/callback-deliveries/{delivery}", None, "DELIVERY_NOT_FOUND", id="delivery"
    ),
    pytest.param("GET", "/v1/callback-secrets/{secret}", None, "SECRET_NOT_FOUND", id="secret"),
    pytest.param(
        "PATCH", "/v1/callback-secrets/{secret}", {"label": "x"}, "SECRET_NOT_FOUND", id="rename"
    ),
    pytest.param(
        "PATCH",
        "/v1/callback-secrets/{secret}",
        {"is_current": True},
        "SECRET_NOT_FOUND",
        id="promote",
    ),
    pytest.param("DELETE", "/v1/callback-secrets/{secret}", None, "SECRET_NOT_FOUND", id="delete"),
]


class TestAnotherOrganization:
    @pytest.mark.parametrize(("method", "template", "body", "code"), ONE_ITEM_ROUTES)
    async def test_another_organizations_item_is_a_404_not_found(
        self,
        api: Api,
        owned: Owned,
        method: str,
        template: str,
        body: dict[str, Any] | None,
        code: str,
    ) -> None:
        other = await api.other_organization_key()
        path = template.format(**vars(owned))

        response = await _request(api, method, path, body, key=other)

        assert (response.status_code, response.json()["code"]) == (404, code)

    @pytest.mark.parametrize(("method", "template", "body", "code"), ONE_ITEM_ROUTES)
    async def test_another_organizations_request_changes_nothing(
        self,
        api: Api,
        owned: Owned,
        method: str,
        template: str,
        body: dict[str, Any] | None,
        code: str,
    ) -> None:
        other = await api.other_organization_key()
        before = await _state(api, owned)

        await _request(api, method, template.format(**vars(owned)), body, key=other)

        assert await _state(api, owned) == before

    @pytest.mark.parametrize(("method", "template", "body", "code"), ONE_ITEM_ROUTES)
    async def test_the_owner_reaches_the_same_item(
        self,
        api: Api,
        owned: Owned,
        method: str,
        template: str,
        body: dict[str, Any] | None,
        code: str,
    ) -> None:
        # The 404s above are the boundary, not a broken route.
        response = await _request(api, method, template.format(**vars(owned)), body)

        assert response.status_code in (200, 201), response.text

    @pytest.mark.parametrize(
        "path",
        [
            "/v1/runs",  # every run
            "/v1/runs?status=succeeded",  # a filter does not widen the scope
            "/v1/runs?client_ref=mine",  # nor does naming the other's client_ref
            "/v1/callback-secrets",  # every secret, disabled ones included
        ],
    )
    async def test_each_organizations_list_shows_only_its_own_items(
        self, api: Api, path: str
    ) -> None:
        other = await api.other_organization_key()
        owned = {None: await _fill(api, None), other: await _fill(api, other)}
        await api.harness.executor.run_until_idle()

        for key, ids in owned.items():
            response = await _request(api, "GET", path, key=key)
            assert response.status_code == 200
            listed = {item["id"] for item in response.json()["items"]}
            assert listed
            assert listed <= ids


class TestPerOrganizationState:
    async def test_the_same_idempotency_key_in_two_organizations_makes_two_runs(
        self, api: Api
    ) -> None:
        other = await api.other_organization_key()
        keyed = {"Idempotency-Key": "order-17"}
        body = {"input": {"n": 1}}

        mine = await _submit(api, body, key=None, headers=keyed)
        theirs = await _submit(api, body, key=other, headers=keyed)

        assert (mine.status_code, theirs.status_code) == (201, 201)
        assert mine.json()["id"] != theirs.json()["id"]
        assert "Idempotent-Replayed" not in theirs.headers

    async def test_another_organizations_first_secret_is_current_too(self, api: Api) -> None:
        await api.post("/v1/callback-secrets", {"label": "mine"})
        other = await api.other_organization_key()

        response = await api.post("/v1/callback-secrets", {"label": "theirs"}, key=other)

        assert response.json()["is_current"] is True

    async def test_promoting_a_secret_leaves_other_organizations_current_secret(
        self, api: Api
    ) -> None:
        mine = (await api.post("/v1/callback-secrets", {"label": "mine"})).json()
        other = await api.other_organization_key()
        await api.post("/v1/callback-secrets", {"label": "theirs"}, key=other)
        second = (await api.post("/v1/callback-secrets", {"label": "theirs 2"}, key=other)).json()

        await _request(
            api, "PATCH", f"/v1/callback-secrets/{second['id']}", {"is_current": True}, key=other
        )

        assert (await api.get(f"/v1/callback-secrets/{mine['id']}")).json()["is_current"] is True

    async def test_a_callback_is_signed_by_its_own_organizations_secrets_alone(
        self, api: Api
    ) -> None:
        await api.post("/v1/callback-secrets", {"label": "mine"})
        other = await api.other_organization_key()
        theirs = (await api.post("/v1/callback-secrets", {"label": "theirs"}, key=other)).json()
        await _submit(api, {"input": {}, "callback_url": "https://receiver.example/h"}, key=other)
        await api.harness.executor.run_until_idle()
        await api.harness.dispatcher.deliver_due()

        [request] = api.harness.sender.requests

        assert request.headers["webhook-signature"] == standard_signature(
            theirs["plain_secret"],
            request.headers["webhook-id"],
            int(request.headers["webhook-timestamp"]),
            request.body,
        )
        assert request.headers["Runflow-Signature"] == runflow_signature(
            theirs["plain_secret"], request.body
        )

    async def test_an_organization_without_secrets_sends_unsigned_callbacks(self, api: Api) -> None:
        await api.post("/v1/callback-secrets", {"label": "mine"})
        other = await api.other_organization_key()
        await _submit(api, {"input": {}, "callback_url": "https://receiver.example/h"}, key=other)
        await api.harness.executor.run_until_idle()
        await api.harness.dispatcher.deliver_due()

        [request] = api.harness.sender.requests

        assert "Runflow-Signature" not in request.headers
        assert "webhook-signature" not in request.headers


class TestTwoOrganizations:
    @pytest.fixture
    async def orgs(self, api: Api) -> tuple[UUID, UUID]:
        store, clock = api.harness.store, api.harness.clock
        second = await store.accounts.create_organization("second", now=clock.now())
        return api.harness.organization_id, second.id

    @pytest.fixture
    async def shared_key(self, api: Api, orgs: tuple[UUID, UUID]) -> str:
        """A key of both organizations, the API's default one first."""
        store, clock = api.harness.store, api.harness.clock
        return await store.accounts.create_api_key(list(orgs), now=clock.now())

    async def _owner_of(self, api: Api, run_id: str, orgs: tuple[UUID, UUID]) -> list[int]:
        """Which organizations see the run (by index in ``orgs``), asked by single-org keys."""
        store, clock = api.harness.store, api.harness.clock
        seen = []
        for index, org in enumerate(orgs):
            key = await store.accounts.create_api_key([org], now=clock.now())
            if (await api.get(f"/v1/runs/{run_id}", key=key)).status_code == 200:
                seen.append(index)
        return seen

    async def test_a_key_of_two_organizations_acts_for_its_first_by_default(
        self, api: Api, orgs: tuple[UUID, UUID], shared_key: str
    ) -> None:
        response = await _submit(api, {"input": {}}, key=shared_key)

        assert response.status_code == 201
        assert await self._owner_of(api, response.json()["id"], orgs) == [0]

    async def test_the_default_is_the_first_organization_the_key_was_given(
        self, api: Api, orgs: tuple[UUID, UUID]
    ) -> None:
        store, clock = api.harness.store, api.harness.clock
        reversed_key = await store.accounts.create_api_key([orgs[1], orgs[0]], now=clock.now())

        response = await _submit(api, {"input": {}}, key=reversed_key)

        assert await self._owner_of(api, response.json()["id"], orgs) == [1]

    @pytest.mark.parametrize("index", [0, 1])  # naming the default explicitly, and the other
    async def test_x_organization_id_chooses_the_organization_it_acts_for(
        self, api: Api, orgs: tuple[UUID, UUID], shared_key: str, index: int
    ) -> None:
        chosen = {"X-Organization-Id": str(orgs[index])}

        response = await _submit(api, {"input": {}}, key=shared_key, headers=chosen)

        assert response.status_code == 201
        assert await self._owner_of(api, response.json()["id"], orgs) == [index]

    async def test_the_key_sees_each_organizations_items_only_when_acting_for_it(
        self, api: Api, orgs: tuple[UUID, UUID], shared_key: str
    ) -> None:
        second = {"X-Organization-Id": str(orgs[1])}
        run_id = await api.run_id()  # the first organization's

        as_first = await _request(api, "GET", f"/v1/runs/{run_id}", key=shared_key)
        as_second = await _request(api, "GET", f"/v1/runs/{run_id}", key=shared_key, headers=second)

        assert as_first.status_code == 200
        assert (as_second.status_code, as_second.json()["code"]) == (404, "RUN_NOT_FOUND")

    @pytest.mark.parametrize(
        "header",
        [
            "not-a-uuid",  # not an id at all
            "",  # present but empty
            "01900000-0000-7000-8000",  # a truncated UUID
        ],
    )
    async def test_a_malformed_x_organization_id_is_a_400(
        self, api: Api, shared_key: str, header: str
    ) -> None:
        response = await _request(
            api, "GET", "/v1/runs", key=shared_key, headers={"X-Organization-Id": header}
        )

        assert (response.status_code, response.json()["code"]) == (400, "BAD_REQUEST")

    @pytest.mark.parametrize(
        "foreign",
        [
            "organization of another key",  # exists, but the key is not a member
            ABSENT_ORGANIZATION,  # no such organization: answered the same, nothing leaks
        ],
    )
    async def test_a_foreign_x_organization_id_is_a_403(
        self, api: Api, shared_key: str, foreign: str
    ) -> None:
        if foreign == "organization of another key":
            store, clock = api.harness.store, api.harness.clock
            foreign = str((await store.accounts.create_organization("third", now=clock.now())).id)

        response = await _request(
            api, "GET", "/v1/runs", key=shared_key, headers={"X-Organization-Id": foreign}
        )

        assert (response.status_code, response.json()["code"]) == (403, "PERMISSION_DENIED")


class TestRevokedKeys:
    async def test_a_revoked_key_answers_401_on_its_very_next_request(self, api: Api) -> None:
        store, clock = api.harness.store, api.harness.clock
        key = await store.accounts.create_api_key([api.harness.organization_id], now=clock.now())
        assert (await api.get("/v1/runs", key=key)).status_code == 200

        await store.accounts.revoke_key(visible_prefix(key), now=clock.now())

        response = await api.get("/v1/runs", key=key)
        assert (response.status_code, response.json()["code"]) == (401, "UNAUTHORIZED")

    async def test_a_revoked_key_of_two_organizations_is_refused_for_both(self, api: Api) -> None:
        store, clock = api.harness.store, api.harness.clock
        second = await store.accounts.create_organization("second", now=clock.now())
        key = await store.accounts.create_api_key(
            [api.harness.organization_id, second.id], now=clock.now()
        )
        await store.accounts.revoke_key(visible_prefix(key), now=clock.now())

        response = await _request(
            api, "GET", "/v1/runs", key=key, headers={"X-Organization-Id": str(second.id)}
        )

        assert (response.status_code, response.json()["code"]) == (401, "UNAUTHORIZED")

    async def test_revoking_one_key_leaves_the_organizations_other_keys_working(
        self, api: Api
    ) -> None:
        store, clock = api.harness.store, api.harness.clock
        key = await store.accounts.create_api_key([api.harness.organization_id], now=clock.now())

        await store.accounts.revoke_key(visible_prefix(key), now=clock.now())

        assert (await api.get("/v1/runs")).status_code == 200
