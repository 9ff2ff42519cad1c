"""Reading a thin callback on the receiving side: which bodies are thin, and what a full body
must share with the thin one. Pure: no fetch here (``tests/integration/test_thin_receivers``)."""

from __future__ import annotations

from typing import Any

import pytest

from runback.errors import ThinBodyError
from runback.receiver.thin import full_payload, thin_payload, thin_url, whole_body

URL = "https://runback.example/files/runs/r/callbacks/d.json?expires=1&signature=ab"
THIN: dict[str, Any] = {"event": "run.completed", "run_id": "r1", "output": None, "output_url": URL}


@pytest.mark.parametrize(
    ("payload", "url"),
    [
        (THIN, URL),
        (THIN | {"output_url": "HTTP://host/x"}, "HTTP://host/x"),  # schemes ignore case
        (THIN | {"output": {"a": 1}}, None),  # whole: output is there
        ({k: v for k, v in THIN.items() if k != "output"}, None),  # no output key at all
        (THIN | {"output_url": "file:///etc/passwd"}, None),
        (THIN | {"output_url": "ftp://host/x"}, None),
        (THIN | {"output_url": "http://"}, None),  # no host
        (THIN | {"output_url": "http://[::1"}, None),  # does not parse
        (THIN | {"output_url": 7}, None),
        ([THIN], None),
        ("text", None),
    ],
)
def test_a_thin_body_is_output_null_and_an_http_output_url(payload: object, url: str) -> None:
    assert thin_url(payload) == url


@pytest.mark.parametrize("body", [b"", b"not json", b'{"output_url":', b'["output_url"]'])
def test_bodies_that_are_not_thin_objects_are_not_thin(body: bytes) -> None:
    assert thin_payload(body) is None
    assert whole_body(body) is body  # nothing fetched, the very bytes


def test_a_full_body_naming_the_same_event_is_answered_parsed() -> None:
    full = b'{"event":"run.completed","run_id":"r1","output":{"big":true}}'

    assert full_payload(THIN, full) == {
        "event": "run.completed",
        "run_id": "r1",
        "output": {"big": True},
    }


@pytest.mark.parametrize(
    ("full", "words"),
    [
        (b'{"event":"run.completed","run_id":"r2"}', "run_id 'r2', not the callback's 'r1'"),
        (b'{"event":"run.failed","run_id":"r1"}', "event 'run.failed'"),
        (b'{"event":"run.completed"}', "run_id None"),  # a field the thin body has is missing
        (b"[1]", "not a JSON object"),
        (b"\xff", "not a JSON object"),
    ],
)
def test_a_full_body_of_another_event_is_refused(full: bytes, words: str) -> None:
    with pytest.raises(ThinBodyError, match=words.replace("(", r"\(")) as caught:
        full_payload(THIN, full)
    assert (caught.value.status_code, caught.value.code) == (502, "THIN_BODY_UNAVAILABLE")


def test_a_batch_s_thin_body_is_matched_on_its_batch_id() -> None:
    thin = {"event": "batch.completed", "batch_id": "b1", "output": None, "output_url": URL}

    with pytest.raises(ThinBodyError, match="batch_id"):
        full_payload(thin, b'{"event":"batch.completed","batch_id":"b2"}')
