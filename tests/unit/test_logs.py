"""Log lines: their JSON and text shapes, the ids bound where work starts, redaction, the
URL helper, and request ids."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from runback import logs
from runback.core.urls import host_of, loggable
from runback.web.app import base_app

API_KEY = "rb_" + "Vq3xY_-" * 6 + "z"
WHSEC = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WHSK = "whsk_" + "q0Hs2QhQ0mJ+e6u1q2+fkQ3Qf0n3yR6aN9t1YzXvBeE="
SEALED = "sealed:v1:k1:" + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """Every logger's lines, as JSON, into a string; the root's handlers restored after."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    logs.configure(level="info", format="json", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def _parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_time_level_logger_message_and_the_bound_ids(
    lines: io.StringIO,
) -> None:
    with logs.bound(run_id="r1", attempt=2), logs.bound(delivery_id="d1"):
        logging.getLogger("runback.x").warning("attempt %d of %s", 2, "d1")
    logging.getLogger("runback.x").info("after")

    inside, after = _parsed(lines)
    assert inside["level"] == "warning"
    assert inside["logger"] == "runback.x"
    assert inside["message"] == "attempt 2 of d1"
    assert inside["time"].endswith("Z")
    assert (inside["run_id"], inside["attempt"], inside["delivery_id"]) == ("r1", 2, "d1")
    assert "run_id" not in after


def test_an_exception_is_its_exc_field_and_the_line_stays_one_line(lines: io.StringIO) -> None:
    try:
        raise ValueError(f"bad secret {WHSEC}")
    except ValueError:
        logging.getLogger("runback").exception("failed")

    [line] = _parsed(lines)
    assert line["message"] == "failed"
    assert "Traceback" in line["exc"]
    assert "ValueError: bad secret whsec_***" in line["exc"]
    assert WHSEC not in lines.getvalue()


async def test_a_task_started_as_work_of_its_own_does_not_inherit_the_spawner_ids(
    lines: io.StringIO,
) -> None:
    async def attempt() -> None:
        logs.start(delivery_id="d1")
        logging.getLogger("runback").info("attempt")

    async def execution() -> None:
        logs.bind(run_id="r1")
        await asyncio.create_task(attempt())
        logging.getLogger("runback").info("ended")

    await asyncio.create_task(execution())

    started, ended = _parsed(lines)
    assert "run_id" not in started
    assert started["delivery_id"] == "d1"
    assert ended["run_id"] == "r1"
    assert "delivery_id" not in ended


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"key {API_KEY}.", "key rb_***."),
        (f"secret={WHSEC}", "secret=whsec_***"),
        (f"private {WHSK} here", "private whsk_*** here"),
        (f"stored {SEALED}", "stored sealed:v1:k1:***"),
        # A URL's query string (its tokens), whatever the scheme; the path stays.
        ("to https://h.example/h?token=a&x=1 failed", "to https://h.example/h?*** failed"),
        ("'http://127.0.0.1/h?t=1'", "'http://127.0.0.1/h?***'"),
        # Bare prefixes (help texts, docs) and public keys are not secrets.
        ("give whsec_... or its whpk_AAAAAAAAAAAA", "give whsec_... or its whpk_AAAAAAAAAAAA"),
        ("a question? yes", "a question? yes"),
    ],
)  # fmt: skip
def test_redaction_masks_secret_shapes_and_query_strings(text: str, shown: str) -> None:
    assert logs.redact(text) == shown


def test_an_access_line_shows_its_path_without_the_query(lines: io.StringIO) -> None:
    access = logging.getLogger("uvicorn.access")
    args = ("127.0.0.1:5", "POST", "/webhooks/src?token=abc", "1.1", 200)
    access.info('%s - "%s %s HTTP/%s" %d', *args)

    [line] = _parsed(lines)
    assert line["message"] == '127.0.0.1:5 - "POST /webhooks/src?*** HTTP/1.1" 200'


def test_the_text_format_masks_too_and_names_the_ids() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.TextFormatter())
    logger = logging.getLogger("runback.text")
    logger.addHandler(handler)
    try:
        with logs.bound(run_id="r1"):
            logger.warning("key %s", API_KEY)
    finally:
        logger.removeHandler(handler)

    assert stream.getvalue().rstrip().endswith("WARNING runback.text: key rb_*** [run_id=r1]")


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_text_on_a_terminal_json_anywhere_else() -> None:
    assert logs.default_format(_Stream(tty=True)) == "text"
    assert logs.default_format(_Stream(tty=False)) == "json"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://r.example/hook?token=abc#frag", "https://r.example/hook"),
        ("http://user:pass@127.0.0.1:9000/h?x=1", "http://127.0.0.1:9000/h"),
        ("http://[::1]:8/p", "http://[::1]:8/p"),
        ("http://h:99999/", "<unparsable URL>"),  # a port out of range
    ],
)
def test_a_url_is_logged_as_scheme_host_and_path(url: str, shown: str) -> None:
    assert loggable(url) == shown


def test_the_host_of_a_url() -> None:
    assert host_of("https://R.example:8/x?y") == "r.example"
    assert host_of("not a url") == ""


async def test_a_sane_request_id_is_echoed_and_bound_an_insane_one_replaced(
    lines: io.StringIO,
) -> None:
    app = base_app("t")

    @app.get("/where")
    async def where() -> dict[str, Any]:
        logging.getLogger("runback").info("answering")
        return dict(logs.current_ids())

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        kept = await client.get("/where", headers={"X-Request-Id": "proxy-1:abc"})
        replaced = await client.get("/where", headers={"X-Request-Id": '"}{"level":"x'})
        missing = await client.get("/nowhere")

    assert kept.headers["X-Request-Id"] == "proxy-1:abc"
    assert kept.json() == {"request_id": "proxy-1:abc"}
    assert replaced.headers["X-Request-Id"] != '"}{"level":"x'
    assert replaced.json() == {"request_id": replaced.headers["X-Request-Id"]}
    assert len(missing.headers["X-Request-Id"]) == 32  # every answer has one, errors too
    answering = [line for line in _parsed(lines) if line["message"] == "answering"]
    assert [line["request_id"] for line in answering] == [
        "proxy-1:abc",
        replaced.headers["X-Request-Id"],
    ]
