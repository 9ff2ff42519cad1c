"""The headshots front door: multipart or JSON in, an answer at once in its own shape, 60
real images made from the photos, ``headshots.completed`` with their URLs (or
``headshots.failed``), the status route, and every refusal in this door's error shape."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from PIL import Image

from runback.core.ids import webhook_id
from support.api import Api

HOOK = "https://receiver.example/webhook/headshots"
PATH = "/api/v1/images/generate-headshots"
PHOTO_URL = "https://photos.example/me.jpg"


def photo(format: str = "JPEG") -> bytes:
    image = Image.new("RGB", (300, 400), (180, 150, 120))
    image.paste((90, 60, 40), (100, 60, 200, 180))  # a head, of sorts
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


async def _upload(
    api: Api, images: list[bytes], *, key: str | None = None, **fields: str
) -> httpx.Response:
    files = [("images", (f"photo{n}.jpg", data, "image/jpeg")) for n, data in enumerate(images)]
    headers = {"x-api-key": key if key is not None else api.key}
    return await api.client.post(PATH, files=files, data=fields, headers=headers)


async def _done(api: Api) -> list[dict[str, Any]]:
    await api.harness.executor.run_until_idle()
    await api.harness.dispatcher.deliver_due()
    return [orjson.loads(r.body) for r in api.harness.sender.requests if r.url == HOOK]


async def test_uploaded_photos_make_sixty_headshots_and_one_callback(api: Api) -> None:
    response = await _upload(api, [photo(), photo("PNG")], callback_url=HOOK)

    assert response.status_code == 200, response.text
    assert list(response.json()) == ["success", "data"]
    headshots_id = response.json()["data"]["headshots_id"]
    [body] = await _done(api)
    assert list(body) == ["event", "headshots_id", "image_urls"]
    assert (body["event"], body["headshots_id"]) == ("headshots.completed", headshots_id)
    assert len(body["image_urls"]) == 60
    picture = await api.client.get(body["image_urls"][7])
    assert picture.status_code == 200
    assert Image.open(io.BytesIO(picture.content)).size == (512, 512)
    expires = datetime.fromtimestamp(
        int(parse_qs(urlsplit(body["image_urls"][0]).query)["expires"][0])
    )
    now = api.harness.clock.now().replace(tzinfo=None)
    assert expires - now >= timedelta(hours=24)  # the seed's figure, at least


async def test_the_callback_is_signed_retried_and_logged_like_every_callback(api: Api) -> None:
    headshots_id = (await _upload(api, [photo()], callback_url=HOOK)).json()["data"]["headshots_id"]
    await _done(api)

    [request] = [r for r in api.harness.sender.requests if r.url == HOOK]
    log = (await api.get(f"/v1/runs/{headshots_id}/callback")).json()
    again = await api.post(f"/v1/runs/{headshots_id}/callback-redeliveries")
    await api.harness.dispatcher.deliver_due()

    assert request.headers["webhook-id"] == webhook_id(__import__("uuid").UUID(headshots_id))
    assert [d["status_code"] for d in log] == ["succeeded"]
    assert again.status_code == 201
    [_, redelivered] = [orjson.loads(r.body) for r in api.harness.sender.requests if r.url == HOOK]
    assert redelivered["event"] == "headshots.completed"
    assert len(redelivered["image_urls"]) == 60


async def test_photos_by_url_as_json(api: Api) -> None:
    api.harness.fetcher.pages[PHOTO_URL] = photo()

    response = await api.client.post(
        PATH,
        json={"callback_url": HOOK, "input_images": [PHOTO_URL]},
        headers={"x-api-key": api.key},
    )
    [body] = await _done(api)

    assert response.status_code == 200, response.text
    assert body["event"] == "headshots.completed"
    assert api.harness.fetcher.fetched == [PHOTO_URL]


async def test_a_photo_that_is_not_an_image_ends_in_headshots_failed(api: Api) -> None:
    api.harness.fetcher.pages[PHOTO_URL] = b"not an image"

    response = await api.client.post(
        PATH, json={"callback_url": HOOK, "input_images": [PHOTO_URL]}, headers=api.auth()
    )
    [body] = await _done(api)

    assert response.status_code == 200  # Bearer works here too
    assert body == {
        "event": "headshots.failed",
        "headshots_id": response.json()["data"]["headshots_id"],
        "error": {"code": "invalid_input", "message": body["error"]["message"]},
    }
    assert "not a readable image" in body["error"]["message"]


async def test_the_status_says_how_the_headshots_are_doing(api: Api) -> None:
    headshots_id = (await _upload(api, [photo()])).json()["data"]["headshots_id"]

    before = await api.client.get(f"{PATH}/{headshots_id}", headers={"x-api-key": api.key})
    await _done(api)
    after = await api.client.get(f"{PATH}/{headshots_id}", headers={"x-api-key": api.key})

    assert before.json()["data"]["status"] == "queued"
    assert after.json()["success"] is True
    assert after.json()["data"]["status"] == "succeeded"
    assert len(after.json()["data"]["image_urls"]) == 60


@pytest.mark.parametrize(
    ("images", "fields", "status", "code"),
    [
        ([], {"callback_url": HOOK}, 422, "VALIDATION_ERROR"),  # no photo
        ([photo()] * 21, {}, 422, "VALIDATION_ERROR"),  # too many
        ([b"GIF89a" + b"0" * 100], {}, 415, "UNSUPPORTED_MEDIA_TYPE"),  # not a taken type
        ([b"\xff\xd8\xff" + b"0" * (15 * 1024 * 1024)], {}, 413, "PAYLOAD_TOO_LARGE"),  # too big
        ([photo()], {"callback_url": "http://10.0.0.1/hook"}, 422, "VALIDATION_ERROR"),
    ],
)
async def test_a_bad_upload_is_refused_in_this_door_s_shape(
    api: Api, images: list[bytes], fields: dict[str, str], status: int, code: str
) -> None:
    response = await _upload(api, images, **fields)

    assert response.status_code == status, response.text
    assert response.json()["success"] is False
    assert response.json()["error"]["code"] == code
    assert list(response.json()["error"]) == ["code", "message"]


async def test_a_missing_key_and_an_unknown_id_are_refused_in_this_door_s_shape(
    api: Api,
) -> None:
    unauthorised = await _upload(api, [photo()], key="rb_nothing")
    missing = await api.client.get(f"{PATH}/nothing", headers={"x-api-key": api.key})

    assert (unauthorised.status_code, unauthorised.json()["error"]["code"]) == (
        401, "UNAUTHORIZED",
    )  # fmt: skip
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "HEADSHOTS_NOT_FOUND")
