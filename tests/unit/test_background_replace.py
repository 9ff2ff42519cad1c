"""``runflow/background-replace``, the seed's example: the subject kept, the border-coloured
background replaced by a scene painted from the prompt, saved as a PNG of the input's size;
bad images fail the run, bad inputs are refused at submit."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import orjson
import pytest
from PIL import Image

from runback.core.records import Run
from runback.core.states import RunStatus
from runback.models.background_replace import SCENES, scene
from runback.store import Store
from runback.testing import ManualClock
from support.api import Api, api_client
from support.harness import Harness, make_harness

MODEL = "runflow/background-replace"
IMAGE_URL = "https://images.example/portrait.png"


@pytest.fixture
async def h(store: Store, clock: ManualClock) -> Harness:
    return await make_harness(store, clock)


def portrait(format: str = "PNG", size: tuple[int, int] = (120, 90)) -> bytes:
    """A red square subject on a plain white background."""
    image = Image.new("RGB", size, "white")
    image.paste((200, 20, 20), (40, 20, 80, 70))
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


async def _replaced(h: Harness, prompt: str, source: bytes | None = None) -> Run:
    h.fetcher.pages[IMAGE_URL] = portrait() if source is None else source
    submitted = await h.submit(model=MODEL, input={"image_url": IMAGE_URL, "prompt": prompt})
    await h.executor.run_until_idle()
    return await h.run(submitted.id)


async def _image(h: Harness, run: Run) -> Image.Image:
    [output] = (await h.store.outputs.for_runs([run.id]))[run.id]
    data = b"".join([chunk async for chunk in h.blobs.read(output.key)])
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_the_background_becomes_the_prompt_s_scene_and_the_subject_stays(
    h: Harness,
) -> None:
    run = await _replaced(h, "a sunny beach")

    assert run.status is RunStatus.SUCCEEDED, run.failure_message
    image = await _image(h, run)
    assert (image.format, image.size) == ("PNG", (120, 90))
    top, bottom = SCENES["beach"]
    assert _close(image.getpixel((5, 1)), top)  # the sky at the top...
    assert _close(image.getpixel((5, 88)), bottom)  # ...the sand at the bottom
    assert image.getpixel((60, 45)) == (200, 20, 20)  # the subject, untouched
    said = orjson.loads(run.output or "")
    assert said["background"]["top"] == top
    assert 0.15 < said["subject_fraction"] < 0.25  # 40x50 of 120x90


def _close(pixel: object, colour: str) -> bool:
    wanted = Image.new("RGB", (1, 1), colour).getpixel((0, 0))
    assert isinstance(pixel, tuple)
    assert isinstance(wanted, tuple)
    return all(abs(a - b) <= 8 for a, b in zip(pixel, wanted, strict=True))


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a quiet forest at dawn", SCENES["forest"]),
        ("Night city", SCENES["night"]),
        ("gold and navy", ("#ffd700", "#000080")),
    ],
)
def test_the_prompt_chooses_the_colours(prompt: str, expected: tuple[str, str]) -> None:
    top, bottom = scene(prompt)

    assert "#{:02x}{:02x}{:02x}".format(*top) == expected[0]
    assert "#{:02x}{:02x}{:02x}".format(*bottom) == expected[1]


def test_a_prompt_that_names_nothing_always_paints_the_same_scene() -> None:
    assert scene("an abstract idea") == scene("an abstract idea") != scene("another idea")


async def test_a_jpeg_works_too(h: Harness) -> None:
    run = await _replaced(h, "studio", portrait("JPEG"))

    assert run.status is RunStatus.SUCCEEDED, run.failure_message


@pytest.mark.parametrize(
    ("source", "says"),
    [
        (b"not an image", "not a readable image"),
        (portrait("GIF"), "GIF image: send JPEG, PNG, WEBP"),
    ],
)
async def test_an_unusable_image_fails_the_run_as_invalid_input(
    h: Harness, source: bytes, says: str
) -> None:
    run = await _replaced(h, "beach", source)

    assert (run.status, run.failure_code) == (RunStatus.FAILED, "invalid_input")
    assert says in (run.failure_message or "")


async def test_an_image_that_cannot_be_fetched_fails_as_fetch_failed(h: Harness) -> None:
    submitted = await h.submit(
        model=MODEL, input={"image_url": "https://images.example/none", "prompt": "beach"}
    )
    await h.executor.run_until_idle()

    assert (await h.run(submitted.id)).failure_code == "fetch_failed"


@pytest.fixture
async def api(store: Store, clock: ManualClock) -> AsyncIterator[Api]:
    async with api_client(store, clock) as client:
        yield client


@pytest.mark.parametrize(
    ("input", "field"),
    [
        ({"prompt": "beach"}, "input.image_url"),
        ({"image_url": IMAGE_URL, "prompt": ""}, "input.prompt"),
        ({"image_url": IMAGE_URL}, "input.prompt"),
    ],
)
async def test_a_bad_input_is_refused_at_submit(
    api: Api, input: dict[str, str], field: str
) -> None:
    response = await api.submit({"input": input}, MODEL)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field
