"""``GET``/``HEAD /files/{key}``: output files behind signed, expiring URLs, with ranges."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

import httpx
import orjson
import pytest

from runback.core.file_urls import sign_file_url
from runback.core.ids import new_id
from runback.core.records import OutputFile, Run
from support.api import Api

BODY = bytes(range(256)) * 4  # 1024 bytes, each offset's value easy to tell apart
SIZE = len(BODY)
LIFETIME = timedelta(hours=1)


async def _run(api: Api) -> Run:
    run = await api.harness.store.runs.get(UUID(await api.run_id()))
    assert run is not None
    return run


async def _save(api: Api, data: bytes = BODY, content_type: str = "image/png") -> OutputFile:
    outputs = api.harness.runtime.outputs
    return await outputs.save(run=await _run(api), position=0, data=data, content_type=content_type)


async def _url(api: Api, output: OutputFile) -> httpx.URL:
    expires_at = api.harness.clock.now() + LIFETIME
    return httpx.URL(await api.harness.runtime.outputs.url(output, expires_at=expires_at))


@pytest.fixture
async def url(api: Api) -> httpx.URL:
    """The signed URL, valid for ``LIFETIME``, of a saved PNG holding ``BODY``."""
    return await _url(api, await _save(api))


def _refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["code"], body["errors"]) == (code, None)
    assert body["message"]


async def test_get_answers_the_bytes_with_their_type_and_length_without_an_api_key(
    api: Api, url: httpx.URL
) -> None:
    response = await api.client.get(url)

    assert response.status_code == 200
    assert response.content == BODY
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(SIZE)


async def test_the_bytes_served_match_the_recorded_sha256_and_the_etag(api: Api) -> None:
    output = await _save(api)

    response = await api.client.get(await _url(api, output))

    assert hashlib.sha256(response.content).hexdigest() == output.sha256
    assert response.headers["etag"] == f'"{output.sha256}"'


async def test_the_answer_says_byte_ranges_are_accepted(api: Api, url: httpx.URL) -> None:
    response = await api.client.get(url)

    assert response.headers["accept-ranges"] == "bytes"


async def test_the_answer_may_be_cached_privately_until_the_url_expires(
    api: Api, url: httpx.URL
) -> None:
    api.harness.clock.advance(600)

    response = await api.client.get(url)

    assert response.headers["cache-control"] == f"private, max-age={3600 - 600}"


async def test_head_answers_the_headers_of_get_and_no_body(api: Api, url: httpx.URL) -> None:
    got = await api.client.get(url)

    response = await api.client.head(url)

    assert response.status_code == 200
    assert response.content == b""
    names = ("content-type", "content-length", "accept-ranges", "etag", "cache-control")
    assert {n: response.headers[n] for n in names} == {n: got.headers[n] for n in names}


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 10),  # the first ten bytes
        ("bytes=0-0", 0, 1),  # one byte: the last position is inclusive
        ("bytes=100-199", 100, 200),  # a slice in the middle
        ("bytes=1000-", 1000, SIZE),  # from an offset to the end
        ("bytes=-24", SIZE - 24, SIZE),  # the last 24 bytes
        ("bytes=-5000", 0, SIZE),  # a suffix longer than the file: the whole file
        ("bytes=1000-5000", 1000, SIZE),  # a last position past the end is clipped
        ("Bytes=0-9", 0, 10),  # the unit is case-insensitive
    ],
)
async def test_one_range_answers_206_with_that_slice(
    api: Api, url: httpx.URL, header: str, start: int, end: int
) -> None:
    response = await api.client.get(url, headers={"Range": header})

    assert response.status_code == 206
    assert response.content == BODY[start:end]
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{SIZE}"
    assert response.headers["content-length"] == str(end - start)


async def test_head_of_a_range_answers_its_headers_and_no_body(api: Api, url: httpx.URL) -> None:
    response = await api.client.head(url, headers={"Range": "bytes=10-19"})

    assert response.status_code == 206
    assert response.content == b""
    assert response.headers["content-range"] == f"bytes 10-19/{SIZE}"
    assert response.headers["content-length"] == "10"


@pytest.mark.parametrize(
    "header",
    [
        f"bytes={SIZE}-",  # starts just past the last byte
        "bytes=5000-6000",  # starts far past the end
        "bytes=-0",  # an empty suffix selects nothing
    ],
)
async def test_a_range_past_the_end_is_416_naming_the_size(
    api: Api, url: httpx.URL, header: str
) -> None:
    response = await api.client.get(url, headers={"Range": header})

    _refused(response, 416, "RANGE_NOT_SATISFIABLE")
    assert response.headers["content-range"] == f"bytes */{SIZE}"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-9,20-29",  # several ranges: RFC 9110 lets a server send the whole file
        "bytes=0-9, 20-29",  # the same, spaced
        "bytes=9-3",  # last before first: not a valid range
        "bytes=-",  # neither position
        "bytes=a-b",  # not numbers
        "items=0-9",  # a unit we do not know
        "bytes=0-9;x",  # trailing garbage
        f"bytes={'9' * 30}-",  # too many digits to be a position in any file
    ],
)
async def test_several_or_unreadable_ranges_answer_the_whole_file(
    api: Api, url: httpx.URL, header: str
) -> None:
    response = await api.client.get(url, headers={"Range": header})

    assert response.status_code == 200
    assert response.content == BODY
    assert "content-range" not in response.headers


async def test_an_empty_file_is_served_empty_and_ignores_ranges(api: Api) -> None:
    url = await _url(api, await _save(api, b"", content_type="text/plain"))

    response = await api.client.get(url, headers={"Range": "bytes=0-9"})

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"
    assert response.headers["content-type"] == "text/plain"


async def test_a_files_expires_at_is_the_instant_its_url_stops_working(api: Api) -> None:
    clock = api.harness.clock
    clock.advance(0.75)  # mid-second: the stated expiry must not be off by a fraction
    outputs, run = api.harness.runtime.outputs, await _run(api)
    await outputs.save(run=run, position=0, data=BODY, content_type="image/png")
    rendered = await outputs.render_one(replace(run, output="{}"))
    assert rendered is not None
    [entry] = orjson.loads(rendered)["outputs"]
    expires_at = datetime.fromisoformat(entry["expires_at"])

    clock.set(expires_at - timedelta(microseconds=1))
    assert (await api.client.get(entry["url"])).status_code == 200
    clock.set(expires_at)
    _refused(await api.client.get(entry["url"]), 403, "FILE_URL_INVALID")


async def test_a_url_past_its_expiry_is_403_json(api: Api, url: httpx.URL) -> None:
    api.harness.clock.advance(LIFETIME.total_seconds() + 1)

    response = await api.client.get(url)

    _refused(response, 403, "FILE_URL_INVALID")


def _flip_last(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


Tamper = Callable[[httpx.URL], httpx.URL]


@pytest.mark.parametrize(
    "tamper",
    [
        # another signature
        lambda u: u.copy_set_param("signature", _flip_last(u.params["signature"])),
        # another key: the file at the next position
        lambda u: u.copy_with(path=u.path.replace("/0000-", "/0001-")),
        # a later expiry, to stretch the URL's life
        lambda u: u.copy_set_param("expires", str(int(u.params["expires"]) + 3600)),
        # an earlier expiry
        lambda u: u.copy_set_param("expires", str(int(u.params["expires"]) - 1)),
        # the signature in upper case: not what was signed
        lambda u: u.copy_set_param("signature", u.params["signature"].upper()),
    ],
)
async def test_an_altered_url_is_403_json(api: Api, url: httpx.URL, tamper: Tamper) -> None:
    response = await api.client.get(tamper(url))

    _refused(response, 403, "FILE_URL_INVALID")


@pytest.mark.parametrize(
    "params",
    [
        {},  # neither
        {"expires"},  # no signature
        {"signature"},  # no expiry
    ],
)
async def test_an_unsigned_url_is_403_json(api: Api, url: httpx.URL, params: set[str]) -> None:
    kept = {name: value for name, value in url.params.items() if name in params}

    response = await api.client.get(url.copy_with(params=kept))

    _refused(response, 403, "FILE_URL_INVALID")


async def test_an_expiry_of_digits_int_cannot_read_is_403_not_a_crash(
    api: Api, url: httpx.URL
) -> None:
    response = await api.client.get(url.copy_set_param("expires", "\u00b2"))

    _refused(response, 403, "FILE_URL_INVALID")


async def test_head_of_an_expired_url_is_403(api: Api, url: httpx.URL) -> None:
    api.harness.clock.advance(LIFETIME.total_seconds() + 1)

    response = await api.client.head(url)

    assert response.status_code == 403


def _signed(api: Api, key: str) -> str:
    return sign_file_url(
        base_url="http://runback.test",
        key=key,
        expires_at=api.harness.clock.now() + LIFETIME,
        secret=api.harness.runtime.api.file_secret,
    )


async def test_a_correctly_signed_key_with_no_file_is_404_json(api: Api) -> None:
    response = await api.client.get(_signed(api, "runs/nothing/0000-none.png"))

    _refused(response, 404, "FILE_NOT_FOUND")


async def test_a_recorded_file_whose_blob_is_gone_is_404_json(api: Api) -> None:
    output = await _save(api)
    await api.harness.blobs.delete(output.key)

    response = await api.client.get(await _url(api, output))

    _refused(response, 404, "FILE_NOT_FOUND")


async def test_a_key_with_spaces_and_unicode_is_served(api: Api) -> None:
    output = await _save(api)
    key = f"runs/{output.run_id}/my café photo #1?.png"
    await api.harness.blobs.put(key, b"odd name")
    await api.harness.store.outputs.add(
        replace(
            output, id=new_id(), key=key, position=1, size=8, created_at=api.harness.clock.now()
        )
    )

    response = await api.client.get(_signed(api, key))

    assert (response.status_code, response.content) == (200, b"odd name")


async def test_the_openapi_schema_lists_get_and_head_of_files(api: Api) -> None:
    response = await api.client.get("/openapi.json")

    operations = response.json()["paths"]["/files/{key}"]
    assert {method: op["operationId"] for method, op in operations.items()} == {
        "get": "get_file",
        "head": "head_file",
    }
