"""Logging in to the dashboard over an httpx client, as a browser's form would."""

from __future__ import annotations

import re

import httpx

PREFIX = "/dashboard"
_LOGIN_TOKEN = re.compile(r'name="login_token" value="([^"]+)"')
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def hidden(pattern: re.Pattern[str], html: str) -> str:
    found = pattern.search(html)
    assert found is not None, html
    return found[1]


async def login(client: httpx.AsyncClient, key: str, *, next_url: str = "") -> httpx.Response:
    """Fetch the form (for its login token and cookie) and post ``key``; answers the POST's
    answer, not followed."""
    form = await client.get(f"{PREFIX}/login")
    token = hidden(_LOGIN_TOKEN, form.text)
    return await client.post(
        f"{PREFIX}/login", data={"api_key": key, "login_token": token, "next": next_url}
    )


async def csrf_token(client: httpx.AsyncClient, path: str = "/runs") -> str:
    """The session's CSRF token, read from a page's forms."""
    page = await client.get(PREFIX + path)
    assert page.status_code == 200, page.text
    return hidden(_CSRF, page.text)
