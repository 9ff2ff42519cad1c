"""Thin bodies: the same envelope, ``output`` null in place, ``output_url`` last, byte exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import orjson
import pytest

from runback.core.payload import run_callback_body
from runback.core.records import Run
from runback.core.thin import full_body_key, is_full_body_key, thin_body
from support.factories import ended_run

URL = "https://runback.example/files/runs/x/callbacks/y.json?expires=1&signature=ab"
RUN_ID = UUID("0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f60")
BATCH_ID = UUID("0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f61")
DELIVERY_ID = UUID("0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f62")
CREATED_AT = datetime(2026, 5, 6, 10, 0, 0, 123456, tzinfo=UTC)
COMPLETED_AT = datetime(2026, 5, 6, 10, 1, 42, 468801, tzinfo=UTC)


def make_run() -> Run:
    """A succeeded run with a callback (as ``test_payload``'s)."""
    return ended_run(
        id=RUN_ID,
        output='{"outputs":[{"type":"image","url":"https://cdn.example/out.png"}]}',
        metadata='{"order":"A-17","note":"café ☕"}',
        created_at=CREATED_AT,
        started_at=CREATED_AT + timedelta(seconds=1),
        completed_at=COMPLETED_AT,
        updated_at=COMPLETED_AT,
    )


def test_a_run_callback_made_thin_is_byte_exact() -> None:
    expected = (
        '{"event":"run.completed",'
        '"run_id":"0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f60",'
        '"status":"succeeded",'
        '"output":null,'
        '"duration_ms":102345,'
        '"created_at":"2026-05-06T10:00:00.123456+00:00",'
        '"completed_at":"2026-05-06T10:01:42.468801+00:00",'
        '"metadata":{"order":"A-17","note":"café ☕"},'
        f'"output_url":"{URL}"}}'
    ).encode()

    assert thin_body(run_callback_body(make_run()), URL) == expected


def test_the_same_body_is_made_thin_the_same_way() -> None:
    full = run_callback_body(make_run())

    assert thin_body(full, URL) == thin_body(full, URL)


@pytest.mark.parametrize(
    ("full", "thin"),
    [
        # a result callback: no output of its own, so output is added, then the link
        (b'{"event":"run.result","result":{"a":1}}',
         b'{"event":"run.result","result":{"a":1},"output":null,"output_url":"U"}'),
        # the body's own output_url does not stay where it was: the link is last
        (b'{"output_url":"mine","output":[1],"z":2}',
         b'{"output":null,"z":2,"output_url":"U"}'),
        # whitespace and escapes come out in runback's one serialisation
        (b'{ "event" : "e\\u00e9", "output" : 1 }',
         '{"event":"eé","output":null,"output_url":"U"}'.encode()),
    ],
)  # fmt: skip
def test_output_is_null_in_place_or_added_and_the_link_comes_last(full: bytes, thin: bytes) -> None:
    assert thin_body(full, "U") == thin


@pytest.mark.parametrize("full", [b"[1,2,3]", b'"text"', b"not json", b""])
def test_a_body_that_is_not_a_json_object_cannot_be_made_thin(full: bytes) -> None:
    assert thin_body(full, URL) is None


def test_a_thin_body_keeps_every_other_field_as_it_was() -> None:
    full = run_callback_body(make_run())
    made = thin_body(full, URL)
    assert made is not None

    thin = orjson.loads(made)
    whole = orjson.loads(full)

    assert thin == whole | {"output": None, "output_url": URL}


@pytest.mark.parametrize(
    ("run_id", "batch_id", "key"),
    [
        (RUN_ID, None, f"runs/{RUN_ID}/callbacks/{DELIVERY_ID.hex}.json"),
        # a batch item's result names its run: it goes with the run
        (RUN_ID, BATCH_ID, f"runs/{RUN_ID}/callbacks/{DELIVERY_ID.hex}.json"),
        (None, BATCH_ID, f"batches/{BATCH_ID}/callbacks/{DELIVERY_ID.hex}.json"),
        (None, None, f"callbacks/{DELIVERY_ID.hex}.json"),
    ],
)
def test_a_full_body_is_kept_under_its_run_or_batch(
    run_id: UUID | None, batch_id: UUID | None, key: str
) -> None:
    made = full_body_key(delivery_id=DELIVERY_ID, run_id=run_id, batch_id=batch_id)

    assert made == key
    assert is_full_body_key(made)


@pytest.mark.parametrize(
    "key",
    [
        f"runs/{RUN_ID}/0000-{DELIVERY_ID.hex}.png",  # an output file
        f"uploads/{RUN_ID}/0",
        f"runs/{RUN_ID}/callbacks/../{DELIVERY_ID.hex}.json",
        f"runs/{RUN_ID}/callbacks/{DELIVERY_ID.hex}.json/x",
    ],
)
def test_other_keys_are_not_full_bodies(key: str) -> None:
    assert not is_full_body_key(key)
