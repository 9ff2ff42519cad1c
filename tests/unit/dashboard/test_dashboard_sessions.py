"""Dashboard logins: an API key exchanged for a server-side session held by a cookie, CSRF
on every POST, and the ways a session ends (logout, expiry, a revoked key)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select

from runback.dashboard import DashboardConfig
from runback.dashboard.sessions import COOKIE
from runback.provider.api.app import create_app
from runback.store import Store
from runback.store.schema import dashboard_sessions
from runback.testing import ManualClock
from support.api import Api, api_client
from support.dashboard import PREFIX, csrf_token, login


@pytest.fixture
async def api(store: Store, clock: ManualClock) -> AsyncIterator[Api]:
    async with api_client(store, clock) as client:
        yield client


def _set_cookie(response: httpx.Response, name: str) -> str:
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
    return header


async def test_a_live_key_opens_a_session_whose_cookie_holds_only_a_random_id(api: Api) -> None:
    answer = await login(api.client, api.key)

    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PREFIX}/runs"
    cookie = _set_cookie(answer, COOKIE)
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert api.key not in cookie
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", f"path={PREFIX}"} <= flags
    assert "secure" not in flags  # served over http
    async with api.harness.store.database.read() as conn:
        stored = (await conn.execute(select(dashboard_sessions.c.id_hash))).scalars().all()
    assert stored == [hashlib.sha256(session_id.encode()).hexdigest()]
    page = await api.client.get(f"{PREFIX}/runs")
    assert page.status_code == 200
    assert "Log out" in page.text


async def test_the_cookie_is_secure_when_the_public_url_is_https(
    store: Store, clock: ManualClock
) -> None:
    async with api_client(store, clock) as api:
        config = DashboardConfig.for_public_url("https://runback.example")
        app = create_app(replace(api.harness.runtime.api), dashboard=config)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://runback.test"
        ) as client:
            answer = await login(client, api.key)

    assert answer.status_code == 303
    assert "secure" in _set_cookie(answer, COOKIE).lower().split("; ")


async def test_an_unknown_key_is_refused_with_the_form_again(api: Api) -> None:
    answer = await login(api.client, "rb_not_a_key")

    assert answer.status_code == 401
    assert "unknown or revoked" in answer.text
    assert COOKIE not in answer.headers.get("set-cookie", "")


async def test_a_login_post_without_its_form_token_is_refused(api: Api) -> None:
    answer = await api.client.post(f"{PREFIX}/login", data={"api_key": api.key})

    assert answer.status_code == 403
    assert COOKIE not in answer.headers.get("set-cookie", "")


async def test_a_page_without_a_session_sends_to_the_login_form_and_back(api: Api) -> None:
    page = await api.client.get(f"{PREFIX}/runs?model=runback/echo")

    assert page.status_code == 303
    assert (
        page.headers["location"]
        == f"{PREFIX}/login?next=%2Fdashboard%2Fruns%3Fmodel%3Drunback%2Fecho"
    )
    answer = await login(api.client, api.key, next_url="/dashboard/runs?model=runback/echo")
    assert answer.headers["location"] == "/dashboard/runs?model=runback/echo"


@pytest.mark.parametrize(
    "next_url",
    [
        "https://elsewhere.example/",  # another site
        "//elsewhere.example/dashboard",  # scheme-relative: another site too
        "/v1/runs",  # not a dashboard page
    ],
)
async def test_login_never_sends_elsewhere(api: Api, next_url: str) -> None:
    answer = await login(api.client, api.key, next_url=next_url)

    assert answer.headers["location"] == f"{PREFIX}/runs"


async def test_an_htmx_request_without_a_session_is_told_where_to_log_in(api: Api) -> None:
    answer = await api.client.get(f"{PREFIX}/runs", headers={"HX-Request": "true"})

    assert answer.status_code == 401
    assert answer.headers["hx-redirect"].startswith(f"{PREFIX}/login?next=")


@pytest.mark.parametrize(
    ("fields", "headers"),
    [
        ({}, {}),  # no token at all
        ({"csrf_token": "forged"}, {}),  # another token in the form
        ({}, {"X-CSRF-Token": "forged"}),  # another token in htmx's header
    ],
)
async def test_a_post_without_the_sessions_csrf_token_is_403(
    api: Api, fields: dict[str, str], headers: dict[str, str]
) -> None:
    await login(api.client, api.key)

    answer = await api.client.post(f"{PREFIX}/logout", data=fields, headers=headers)

    assert answer.status_code == 403
    assert "<code>csrf_token</code>" in answer.text  # the field, on the dashboard's page
    assert (await api.client.get(f"{PREFIX}/runs")).status_code == 200  # still logged in


async def test_the_csrf_token_in_htmxs_header_is_accepted(api: Api) -> None:
    await login(api.client, api.key)
    token = await csrf_token(api.client)

    answer = await api.client.post(f"{PREFIX}/logout", headers={"X-CSRF-Token": token})

    assert answer.status_code == 303


async def test_logout_ends_the_session(api: Api) -> None:
    await login(api.client, api.key)
    token = await csrf_token(api.client)
    session_id = api.client.cookies[COOKIE]

    answer = await api.client.post(f"{PREFIX}/logout", data={"csrf_token": token})

    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PREFIX}/login?out=true"
    api.client.cookies.set(COOKIE, session_id, path=PREFIX)  # a copy kept opens nothing
    assert (await api.client.get(f"{PREFIX}/runs")).status_code == 303


async def test_a_session_ends_when_it_expires(api: Api) -> None:
    await login(api.client, api.key)
    api.harness.clock.advance(DashboardConfig().session_lifetime.total_seconds() - 1)
    assert (await api.client.get(f"{PREFIX}/runs")).status_code == 200

    api.harness.clock.advance(1)

    assert (await api.client.get(f"{PREFIX}/runs")).status_code == 303


async def test_revoking_the_key_ends_its_sessions(api: Api) -> None:
    await login(api.client, api.key)
    [key] = await api.harness.store.accounts.list_keys()

    await api.harness.store.accounts.revoke_key(str(key.id), now=api.harness.clock.now())

    assert (await api.client.get(f"{PREFIX}/runs")).status_code == 303


async def test_a_key_of_several_organizations_chooses_the_one_shown(api: Api) -> None:
    store, clock = api.harness.store, api.harness.clock
    other = await store.accounts.create_organization("acme", now=clock.now())
    key = await store.accounts.create_api_key(
        [api.harness.organization_id, other.id], now=clock.now()
    )
    await login(api.client, key)
    mine = await api.run_id()  # of the default organization
    token = await csrf_token(api.client)
    assert mine in (await api.client.get(f"{PREFIX}/runs")).text

    chosen = await api.client.post(
        f"{PREFIX}/organization",
        data={"csrf_token": token, "organization_id": str(other.id), "next": "/dashboard/runs"},
    )

    assert chosen.status_code == 303
    page = (await api.client.get(f"{PREFIX}/runs")).text
    assert mine not in page
    assert f'<option value="{other.id}" selected>acme</option>' in page


async def test_an_organization_not_of_the_key_cannot_be_chosen(api: Api) -> None:
    other = await api.other_organization_key()
    [org] = [o for o in await api.harness.store.accounts.list_organizations() if o.name == "other"]
    assert other
    await login(api.client, api.key)
    token = await csrf_token(api.client)

    refused = await api.client.post(
        f"{PREFIX}/organization", data={"csrf_token": token, "organization_id": str(org.id)}
    )

    assert refused.status_code == 403
    assert "<code>organization_id</code>" in refused.text
