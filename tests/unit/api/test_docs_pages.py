"""``/docs`` and ``/redoc`` work without internet access: every asset they load is runback's."""

from __future__ import annotations

import re

import httpx

from runback.receiver.config import ReceiveConfig
from runback.store import Store
from runback.testing import ManualClock
from support.api import Api
from support.inbox import inbox_client

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']|url: *["']([^"']+)["']""")
TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "json"}


async def _pages_load_only_local_assets(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200, page
        assert response.headers["content-type"].startswith("text/html")
        found = [a or b for a, b in ASSET.findall(response.text)]
        assert found, page
        for url in found:
            assert url.startswith("/"), f"{page} loads {url} from elsewhere"
            served = await client.get(url)
            assert served.status_code == 200, url
            suffix = "." + url.rsplit(".", 1)[-1]
            assert TYPES[suffix] in served.headers["content-type"], url
        assert "http://" not in response.text
        assert "https://" not in response.text


async def test_the_apis_pages_load_only_local_assets(api: Api) -> None:
    await _pages_load_only_local_assets(api.client)


async def test_the_receivers_pages_load_only_local_assets(store: Store, clock: ManualClock) -> None:
    async with inbox_client(store, clock, config=ReceiveConfig()) as inbox:
        await _pages_load_only_local_assets(inbox.client)


async def test_the_pages_are_not_in_the_schema(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()

    assert not any(p.startswith(("/docs", "/redoc")) for p in schema["paths"])
