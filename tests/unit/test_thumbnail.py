"""``runback/thumbnail``: a PNG of the asked size, from a fetched image or drawn, saved as the
run's output file; bad sizes are refused at submit, bad images fail the run."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from PIL import Image

from runback.core.records import OutputFile, Run
from runback.core.states import RunStatus
from runback.store import Store
from runback.testing import ManualClock
from support.api import Api, api_client
from support.harness import Harness, make_harness

MODEL = "runback/thumbnail"
IMAGE_URL = "https://images.example/cat"


@pytest.fixture
async def h(store: Store, clock: ManualClock) -> Harness:
    return await make_harness(store, clock)


@pytest.fixture
async def api(store: Store, clock: ManualClock) -> AsyncIterator[Api]:
    async with api_client(store, clock) as client:
        yield client


def encoded(size: tuple[int, int], *, format: str = "PNG", mode: str = "RGB") -> bytes:
    """A real image of ``size`` in ``format``: a two-colour picture, to be worth resizing."""
    if mode == "RGBA":
        image = Image.new("RGBA", size, (255, 0, 0, 128))
    else:
        image = Image.new("RGB", size, "red")
    image.paste("blue", (0, 0, size[0] // 2, size[1] // 2))
    return saved(image if mode in ("RGB", "RGBA") else image.convert(mode), format)


def saved(image: Image.Image, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


async def thumbnail_run(h: Harness, **input: Any) -> Run:
    """Submit a thumbnail run with ``input`` and run it to its end."""
    submitted = await h.submit(model=MODEL, input=input)
    await h.executor.run_until_idle()
    return await h.run(submitted.id)


async def only_output(h: Harness, run: Run) -> OutputFile:
    [output] = (await h.store.outputs.for_runs([run.id]))[run.id]
    return output


async def blob(h: Harness, key: str) -> bytes:
    return b"".join([chunk async for chunk in h.blobs.read(key)])


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_without_a_url_the_run_saves_one_png_output_file(h: Harness) -> None:
    run = await thumbnail_run(h, width=64, height=32)

    assert run.status is RunStatus.SUCCEEDED
    output = await only_output(h, run)
    assert (output.type, output.content_type) == ("image", "image/png")
    assert orjson.loads(run.output or "") == {"width": 64, "height": 32}


@pytest.mark.parametrize(
    ("input", "size"),
    [
        ({"width": 64, "height": 32}, (64, 32)),  # landscape
        ({"width": 17, "height": 301}, (17, 301)),  # portrait, odd sizes
        ({"width": 1, "height": 1}, (1, 1)),  # the smallest allowed
        ({"width": 2048, "height": 3}, (2048, 3)),  # the widest allowed
        ({}, (256, 256)),  # both sides default
    ],
)
async def test_a_drawn_picture_is_a_png_of_exactly_the_asked_size(
    h: Harness, input: dict[str, Any], size: tuple[int, int]
) -> None:
    run = await thumbnail_run(h, **input)

    image = opened(await blob(h, (await only_output(h, run)).key))
    assert (image.format, image.size) == ("PNG", size)


async def test_the_recorded_size_and_sha256_are_those_of_the_stored_file(h: Harness) -> None:
    run = await thumbnail_run(h, width=40, height=30)

    output = await only_output(h, run)
    stored = await blob(h, output.key)
    assert output.size == len(stored)
    assert output.sha256 == hashlib.sha256(stored).hexdigest()


@pytest.mark.parametrize(
    ("source", "size"),
    [
        (encoded((640, 480)), (128, 128)),  # a landscape PNG made square
        (encoded((300, 900), format="JPEG"), (100, 50)),  # a portrait JPEG made landscape
        (encoded((50, 40), format="GIF", mode="P"), (200, 160)),  # a small palette GIF, enlarged
        (encoded((64, 64), format="WEBP"), (64, 64)),  # already the asked size
    ],
)
async def test_a_fetched_image_becomes_a_png_of_exactly_the_asked_size(
    h: Harness, source: bytes, size: tuple[int, int]
) -> None:
    h.fetcher.pages[IMAGE_URL] = source

    run = await thumbnail_run(h, image_url=IMAGE_URL, width=size[0], height=size[1])

    assert run.status is RunStatus.SUCCEEDED, run.failure_message
    image = opened(await blob(h, (await only_output(h, run)).key))
    assert (image.format, image.size) == ("PNG", size)
    assert h.fetcher.fetched == [IMAGE_URL]


async def test_a_translucent_image_keeps_its_alpha(h: Harness) -> None:
    h.fetcher.pages[IMAGE_URL] = encoded((80, 60), mode="RGBA")

    run = await thumbnail_run(h, image_url=IMAGE_URL, width=20, height=20)

    image = opened(await blob(h, (await only_output(h, run)).key))
    assert image.mode == "RGBA"
    assert image.getpixel((19, 19)) == (255, 0, 0, 128)


async def test_a_url_that_cannot_be_fetched_fails_the_run_as_fetch_failed(h: Harness) -> None:
    run = await thumbnail_run(h, image_url="https://images.example/missing")

    assert run.status is RunStatus.FAILED
    assert run.failure_code == "fetch_failed"
    assert await h.store.outputs.for_runs([run.id]) == {run.id: []}


@pytest.mark.parametrize(
    "source",
    [
        b"this is not an image",  # garbage
        b"",  # nothing at all
        encoded((200, 200))[:80],  # a PNG cut short after its header
    ],
)
async def test_bytes_that_are_not_a_readable_image_fail_the_run_as_invalid_input(
    h: Harness, source: bytes
) -> None:
    h.fetcher.pages[IMAGE_URL] = source

    run = await thumbnail_run(h, image_url=IMAGE_URL)

    assert run.status is RunStatus.FAILED
    assert run.failure_code == "invalid_input"
    assert "not a readable image" in (run.failure_message or "")


async def test_an_image_of_too_many_pixels_is_refused_before_decoding(h: Harness) -> None:
    # 56 million one-bit pixels: a small file that would unpack to 170 MB of RGB
    h.fetcher.pages[IMAGE_URL] = saved(Image.new("1", (8000, 7000)))

    run = await thumbnail_run(h, image_url=IMAGE_URL)

    assert run.status is RunStatus.FAILED
    assert run.failure_code == "invalid_input"
    assert "8000x7000" in (run.failure_message or "")


@pytest.mark.parametrize(
    ("input", "field"),
    [
        ({"width": 0}, "input.width"),  # below 1
        ({"width": 5000}, "input.width"),  # above 2048
        ({"height": -3}, "input.height"),  # negative
        ({"width": "wide"}, "input.width"),  # not a number
        ({"image_url": "https://x.example/" + "a" * 2048}, "input.image_url"),  # too long
        ({"colour": "red"}, "input.colour"),  # unknown fields are refused
    ],
)
async def test_a_bad_input_is_a_422_naming_its_field(
    api: Api, input: dict[str, Any], field: str
) -> None:
    response = await api.submit({"input": input}, model=MODEL)

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]


async def test_a_valid_input_is_accepted_at_submit(api: Api) -> None:
    response = await api.submit({"input": {"width": 2048, "height": 1}}, model=MODEL)

    assert response.status_code == 201, response.text


async def test_the_callback_lists_the_file_with_its_url_and_digest(h: Harness) -> None:
    run = await thumbnail_run(h, width=32, height=32)

    await h.dispatcher.deliver_due()

    [request] = h.sender.requests
    [entry] = orjson.loads(request.body)["output"]["outputs"]
    output = await only_output(h, run)
    assert set(entry) == {"type", "url", "content_type", "size", "sha256", "expires_at"}
    assert (entry["type"], entry["content_type"]) == ("image", "image/png")
    assert (entry["size"], entry["sha256"]) == (output.size, output.sha256)
    assert entry["url"].startswith("http://runback.test/files/")
    assert entry["expires_at"].endswith("+00:00")
