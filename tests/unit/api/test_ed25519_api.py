"""Ed25519 callback keys through ``/v1/callback-secrets``: creating, showing, publishing as
JWKS without an API key, and the ``v1a`` entries of the callbacks they sign."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from runback.core.signing import runflow_signature, standard_signature
from runback.outbound.sender import OutboundRequest
from support.api import Api


async def _create(api: Api, kind: str | None = None, label: str = "key") -> dict[str, Any]:
    body: dict[str, Any] = {"label": label}
    if kind is not None:
        body["type"] = kind
    response = await api.post("/v1/callback-secrets", body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _entries(request: OutboundRequest, version: str) -> list[str]:
    return [
        entry
        for entry in request.headers["webhook-signature"].split(" ")
        if entry.partition(",")[0] == version
    ]


def _signed(request: OutboundRequest) -> bytes:
    headers = request.headers
    return b"%s.%s.%s" % (
        headers["webhook-id"].encode(),
        headers["webhook-timestamp"].encode(),
        request.body,
    )


def _verifies(public_key: str, entry: str, signed: bytes) -> bool:
    """Checked by PyNaCl (libsodium), not by the library runback signs with."""
    key = VerifyKey(base64.b64decode(public_key.removeprefix("whpk_")))
    try:
        key.verify(signed, base64.b64decode(entry.removeprefix("v1a,")))
    except BadSignatureError:
        return False
    return True


def _signed_by(request: OutboundRequest, *keys: dict[str, Any]) -> list[bool]:
    """For each ``v1a`` entry, whether one of ``keys`` signed it."""
    return [
        any(_verifies(key["public_key"], entry, _signed(request)) for key in keys)
        for entry in _entries(request, "v1a")
    ]


class TestCreate:
    async def test_an_ed25519_key_shows_its_public_key_and_never_its_private_key(
        self, api: Api
    ) -> None:
        response = await api.post("/v1/callback-secrets", {"type": "ed25519", "label": "asym"})

        assert response.status_code == 201
        created = response.json()
        assert created["type"] == "ed25519"
        assert created["public_key"].startswith("whpk_")
        assert len(base64.b64decode(created["public_key"][5:], validate=True)) == 32
        assert created["key_prefix"] == created["public_key"][:15]
        assert created["is_current"] is True  # the first of its type
        assert "plain_secret" not in created
        assert "whsk_" not in response.text

    async def test_a_secret_is_hmac_when_no_type_is_given(self, api: Api) -> None:
        created = await _create(api)

        assert created["type"] == "hmac"
        assert created["plain_secret"].startswith("whsec_")
        assert "public_key" not in created

    @pytest.mark.parametrize(
        "kind",
        [
            "rsa",  # a scheme Standard Webhooks has no version for
            "ED25519",  # the names are lowercase
            7,  # not a string
        ],
    )
    async def test_an_unknown_type_is_a_422_naming_the_field(self, api: Api, kind: object) -> None:
        response = await api.post("/v1/callback-secrets", {"type": kind})

        assert response.status_code == 422
        error = response.json()
        assert error["code"] == "VALIDATION_ERROR"
        [problem] = error["errors"]
        assert problem["field"] == "type"

    async def test_list_and_show_give_the_type_and_the_public_key(self, api: Api) -> None:
        hmac = await _create(api, "hmac")
        ed25519 = await _create(api, "ed25519")

        listed = (await api.get("/v1/callback-secrets")).json()["items"]
        shown = (await api.get(f"/v1/callback-secrets/{ed25519['id']}")).json()

        assert [(s["id"], s["type"]) for s in listed] == [
            (hmac["id"], "hmac"),
            (ed25519["id"], "ed25519"),
        ]
        assert listed[1]["public_key"] == ed25519["public_key"] == shown["public_key"]
        assert "public_key" not in listed[0]
        assert "plain_secret" not in shown
        assert "whsk_" not in (await api.get("/v1/callback-secrets")).text


class TestJwks:
    async def test_the_public_keys_are_published_without_an_api_key(self, api: Api) -> None:
        await _create(api, "hmac")  # an HMAC secret is never published
        first = await _create(api, "ed25519")
        second = await _create(api, "ed25519")

        response = await api.client.get("/v1/callback-secrets/jwks")

        assert response.status_code == 200
        assert "max-age=60" in response.headers["Cache-Control"]
        jwks = response.json()
        assert [key["kid"] for key in jwks["keys"]] == [first["id"], second["id"]]
        for key, created in zip(jwks["keys"], (first, second), strict=True):
            assert key == {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": key["x"],
                "kid": created["id"],
                "use": "sig",
                "alg": "EdDSA",
            }
            raw = base64.urlsafe_b64decode(key["x"] + "=")
            assert raw == base64.b64decode(created["public_key"][5:])

    async def test_a_disabled_key_leaves_the_document(self, api: Api) -> None:
        old = await _create(api, "ed25519")
        new = await _create(api, "ed25519")
        await api.client.patch(
            f"/v1/callback-secrets/{new['id']}", json={"is_current": True}, headers=api.auth()
        )
        await api.client.delete(f"/v1/callback-secrets/{old['id']}", headers=api.auth())

        jwks = (await api.client.get("/v1/callback-secrets/jwks")).json()

        assert [key["kid"] for key in jwks["keys"]] == [new["id"]]

    async def test_organization_id_keeps_one_organizations_keys(self, api: Api) -> None:
        ours = await _create(api, "ed25519")
        other_key = await api.other_organization_key()
        response = await api.post("/v1/callback-secrets", {"type": "ed25519"}, key=other_key)
        theirs = response.json()
        organization_id = str(api.harness.organization_id)

        mine = await api.client.get(
            "/v1/callback-secrets/jwks", params={"organization_id": organization_id}
        )
        everyone = await api.client.get("/v1/callback-secrets/jwks")

        assert [key["kid"] for key in mine.json()["keys"]] == [ours["id"]]
        assert [key["kid"] for key in everyone.json()["keys"]] == [ours["id"], theirs["id"]]

    async def test_a_malformed_organization_id_is_a_422_naming_it(self, api: Api) -> None:
        response = await api.client.get(
            "/v1/callback-secrets/jwks", params={"organization_id": "not-a-uuid"}
        )

        assert response.status_code == 422
        [problem] = response.json()["errors"]
        assert problem["field"] == "organization_id"

    async def test_without_ed25519_keys_the_document_is_empty(self, api: Api) -> None:
        response = await api.client.get("/v1/callback-secrets/jwks")

        assert response.json() == {"keys": []}


class TestSigning:
    async def test_an_ed25519_key_signs_a_v1a_entry_beside_the_hmac_v1_entry(
        self, api: Api
    ) -> None:
        hmac = await _create(api, "hmac")
        ed25519 = await _create(api, "ed25519")

        request = await api.deliver_one()

        entries = request.headers["webhook-signature"].split(" ")
        assert entries[0] == _standard(request, hmac["plain_secret"])
        assert [e.partition(",")[0] for e in entries] == ["v1", "v1a"]
        assert _signed_by(request, ed25519) == [True]
        assert request.headers["Runflow-Signature"] == runflow_signature(
            hmac["plain_secret"], request.body
        )

    async def test_an_organization_with_ed25519_keys_only_sends_no_runflow_signature(
        self, api: Api
    ) -> None:
        ed25519 = await _create(api, "ed25519")

        request = await api.deliver_one()

        assert "Runflow-Signature" not in request.headers
        assert _entries(request, "v1") == []
        assert _signed_by(request, ed25519) == [True]

    async def test_rotation_two_active_keys_sign_two_entries_then_one(self, api: Api) -> None:
        old = await _create(api, "ed25519")
        new = await _create(api, "ed25519")

        during = await api.deliver_one()
        await api.client.patch(
            f"/v1/callback-secrets/{new['id']}", json={"is_current": True}, headers=api.auth()
        )
        deleted = await api.client.delete(f"/v1/callback-secrets/{old['id']}", headers=api.auth())
        after = await api.deliver_one()

        assert deleted.status_code == 200
        assert _signed_by(during, old) == [True, False]
        assert _signed_by(during, new) == [False, True]
        assert _signed_by(after, new) == [True]

    async def test_the_current_ed25519_key_cannot_go_while_another_is_active(
        self, api: Api
    ) -> None:
        current = await _create(api, "ed25519")
        await _create(api, "ed25519")

        response = await api.client.delete(
            f"/v1/callback-secrets/{current['id']}", headers=api.auth()
        )

        assert response.status_code == 409

    async def test_without_ed25519_keys_the_signature_headers_are_todays(self, api: Api) -> None:
        old = await _create(api, "hmac")
        new = await _create(api)

        request = await api.deliver_one()

        assert list(request.headers) == [
            "webhook-id",
            "webhook-timestamp",
            "Runflow-Signature",
            "webhook-signature",
            "Content-Type",
            "Runflow-Request-Id",
        ]
        assert request.headers["webhook-signature"] == " ".join(
            _standard(request, s["plain_secret"]) for s in (old, new)
        )
        assert request.headers["Runflow-Signature"] == runflow_signature(
            old["plain_secret"], request.body
        )

    async def test_the_attempt_records_the_current_hmac_secret(self, api: Api) -> None:
        await _create(api, "ed25519")  # current among Ed25519 keys, but signs no Runflow header
        hmac = await _create(api, "hmac")
        run_id = await api.run_id()
        await api.harness.executor.run_until_idle()
        await api.harness.dispatcher.deliver_due()

        [delivery] = (await api.get(f"/v1/runs/{run_id}/callback")).json()

        assert delivery["attempts"][0]["signing_secret_id"] == hmac["id"]


def _standard(request: OutboundRequest, plain: str) -> str:
    return standard_signature(
        plain,
        request.headers["webhook-id"],
        int(request.headers["webhook-timestamp"]),
        request.body,
    )
