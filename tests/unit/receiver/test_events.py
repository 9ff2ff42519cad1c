"""Reading a received callback: key fields, dedupe keys, output URLs and their expiry. Pure."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from runback.errors import ConfigError
from runback.receiver.events import (
    DEFAULT_URL_LIFETIME,
    EventKeys,
    OutputRef,
    event_keys,
    output_refs,
    parse_output_path,
    ref_expiry,
    url_expiry,
)

RUN_ID = "0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f60"
BATCH_ID = "0193b7e4-8c1a-7d2e-9f3a-00000000ba7c"
HEADSHOTS_ID = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
TASK_UUID = "a770f077-f413-47de-9dac-be0b26a35da6"
IMAGE_1 = "550e8400-e29b-41d4-a716-446655440000"
IMAGE_2 = "550e8400-e29b-41d4-a716-446655440001"
RECEIVED_AT = datetime(2026, 5, 6, 10, 0, tzinfo=UTC)

RUN_CALLBACK = {
    "event": "run.completed",
    "run_id": RUN_ID,
    "status": "succeeded",
    "output": {"outputs": [{"type": "image", "url": "https://cdn.example.com/out.png"}]},
    "metadata": None,
}
BATCH_CALLBACK = {
    "event": "batch.succeeded",
    "batch_id": BATCH_ID,
    "status": "succeeded",
    "output": {"items": [], "succeeded": 2, "failed": 0, "cancelled": 0, "total": 2},
}
HEADSHOTS = {
    "event": "headshots.completed",
    "headshots_id": HEADSHOTS_ID,
    "image_urls": [f"https://cdn.runflow.io/headshots/out_{n:03}.jpg" for n in range(1, 61)],
}


def runware(image_uuid: str) -> dict[str, object]:
    """One of Runware's per-result posts: the task response of one image."""
    return {
        "taskType": "imageInference",
        "taskUUID": TASK_UUID,
        "imageUUID": image_uuid,
        "imageURL": f"https://im.runware.ai/image/ws/0.5/ii/{image_uuid}.jpg",
        "cost": 0.004,
    }


def keys(payload: object, *, webhook_id: str | None = None) -> EventKeys:
    return event_keys(payload, webhook_id=webhook_id, body=json.dumps(payload).encode())


def body_key(payload: object) -> str:
    return "body:" + hashlib.sha256(json.dumps(payload).encode()).hexdigest()


# --- dedupe keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "dedupe_key"),
    [
        (RUN_CALLBACK, f"run:{RUN_ID}:run.completed"),  # a runback / Runflow run callback
        (BATCH_CALLBACK, f"batch:{BATCH_ID}:batch.succeeded"),  # a batch callback
        (HEADSHOTS, f"headshots:{HEADSHOTS_ID}:headshots.completed"),  # 60-URL headshots
        (runware(IMAGE_1), f"task:{TASK_UUID}:{IMAGE_1}"),  # a Runware per-result post
        ({"taskUUID": "t", "videoUUID": "v"}, "task:t:v"),  # a Runware video result
        ({"taskUUID": "t", "audioUUID": "a"}, "task:t:a"),  # a Runware audio result
        ({"taskUUID": "t", "mediaUUID": "m"}, "task:t:m"),  # a Runware media result
        ({"run_id": "r"}, "run:r:"),  # no event: the last part is empty
        ({"run_id": 17, "event": "run.failed"}, "run:17:run.failed"),  # an integer id
        ({"run_id": "a:b", "event": "c"}, "run:a%3Ab:c"),  # a colon cannot forge another key
        ({"run_id": "r", "batch_id": "b", "event": "e"}, "run:r:e"),  # run_id comes first
    ],
)
def test_dedupe_key_by_payload_shape(payload: object, dedupe_key: str) -> None:
    assert keys(payload).dedupe_key == dedupe_key


def test_key_fields_of_a_run_callback() -> None:
    assert keys(RUN_CALLBACK) == EventKeys(
        event="run.completed",
        run_id=RUN_ID,
        batch_id=None,
        headshots_id=None,
        task_uuid=None,
        result_id=None,
        status="succeeded",
        dedupe_key=f"run:{RUN_ID}:run.completed",
    )


def test_key_fields_of_a_runware_post() -> None:
    read = keys(runware(IMAGE_1))

    assert (read.task_uuid, read.result_id, read.event, read.run_id) == (
        TASK_UUID,
        IMAGE_1,
        None,
        None,
    )


def test_two_results_of_one_runware_task_are_two_events() -> None:
    assert keys(runware(IMAGE_1)).dedupe_key != keys(runware(IMAGE_2)).dedupe_key


def test_the_same_runware_result_twice_is_one_event() -> None:
    assert keys(runware(IMAGE_1)).dedupe_key == keys(runware(IMAGE_1) | {"cost": 0.005}).dedupe_key


def test_a_runware_post_without_a_result_id_is_keyed_by_its_body() -> None:
    payload = {"taskType": "imageCaption", "taskUUID": TASK_UUID, "text": "a cat"}

    assert keys(payload).dedupe_key == body_key(payload)


@pytest.mark.parametrize(
    ("payload", "dedupe_key"),
    [
        (RUN_CALLBACK, f"run:{RUN_ID}:run.completed"),
        (runware(IMAGE_1), f"task:{TASK_UUID}:{IMAGE_1}"),
    ],
)
def test_the_bodys_own_ids_win_over_the_webhook_id(payload: object, dedupe_key: str) -> None:
    # One callback arriving with a webhook-id and again with only Runflow-Signature is one
    # event: the key cannot depend on which headers came.
    assert keys(payload, webhook_id="msg_p5jXN8AQM9LWM0D4loKWxJek").dedupe_key == dedupe_key
    assert keys(payload).dedupe_key == dedupe_key


@pytest.mark.parametrize(
    "payload",
    [
        {"hello": "world"},  # a body with no id of its own
        [1, 2, 3],  # and junk
    ],
)
def test_without_ids_in_the_body_the_webhook_id_keys_it(payload: object) -> None:
    assert keys(payload, webhook_id="msg_p5jXN8AQM9LWM0D4loKWxJek").dedupe_key == (
        "wh:msg_p5jXN8AQM9LWM0D4loKWxJek"
    )


def test_an_events_sequence_is_part_of_a_runs_key() -> None:
    first = keys(RUN_CALLBACK | {"event": "run.logs", "sequence": 3})
    later = keys(RUN_CALLBACK | {"event": "run.logs", "sequence": 4})

    assert first.dedupe_key == f"run:{RUN_ID}:run.logs:3"
    assert later.dedupe_key != first.dedupe_key


def test_a_redelivery_with_a_fresh_payload_keeps_its_webhook_id_key() -> None:
    fresh = RUN_CALLBACK | {"output": {"outputs": [{"url": "https://cdn.example.com/new.png"}]}}

    first = keys(RUN_CALLBACK, webhook_id="msg_1")

    assert keys(fresh, webhook_id="msg_1").dedupe_key == first.dedupe_key


@pytest.mark.parametrize(
    "webhook_id",
    [
        "",  # empty
        "x" * 201,  # longer than 200
        "msg\n1",  # a control character
    ],
)
def test_an_unusable_webhook_id_is_ignored(webhook_id: str) -> None:
    assert keys(RUN_CALLBACK, webhook_id=webhook_id).dedupe_key == (f"run:{RUN_ID}:run.completed")


@pytest.mark.parametrize(
    "payload",
    [
        [RUN_CALLBACK],  # a list, even of a good callback
        None,  # JSON null
        42,  # a number
        3.5,  # a float
        True,  # a boolean
        "run_id",  # a string
        "x" * 1_000_000,  # a huge string
        {},  # an empty object
        {"run_id": None, "event": "run.completed"},  # a null id
        {"run_id": 1.5},  # a float id
        {"run_id": True},  # a boolean id
        {"run_id": {"nested": "junk"}},  # an object id
        {"run_id": ["a"]},  # a list id
        {"run_id": ""},  # an empty id
        {"run_id": "r" * 201},  # an id over 200 characters
        {"run_id": "r\x00"},  # a control character
        {"run_id": "\ud800"},  # a lone surrogate, which cannot be UTF-8 encoded
        {"run_id": 10**5000},  # an integer str() refuses to render
        {"taskUUID": ["t"], "imageUUID": "i"},  # a list task id
        {"taskUUID": "t", "imageUUID": {"a": 1}},  # an object result id
    ],
)
def test_junk_payloads_get_a_body_hash_key_and_never_raise(payload: object) -> None:
    body = b'["whatever the sender sent"]'

    read = event_keys(payload, webhook_id=None, body=body)

    assert read.dedupe_key == "body:" + hashlib.sha256(body).hexdigest()


def test_an_id_of_exactly_200_characters_is_taken() -> None:
    assert keys({"run_id": "r" * 200}).run_id == "r" * 200


# --- output refs -------------------------------------------------------------------------------


def urls(payload: object, *extra: str) -> list[tuple[str, str]]:
    return [(ref.path, ref.url) for ref in output_refs(payload, extra_paths=extra)]


@pytest.mark.parametrize(
    ("payload", "found"),
    [
        (RUN_CALLBACK, [("output.outputs[0].url", "https://cdn.example.com/out.png")]),  # runback
        ({"image_urls": ["https://a/1"]}, [("image_urls[0]", "https://a/1")]),  # headshots
        ({"output": {"image_urls": ["http://a/1"]}}, [("output.image_urls[0]", "http://a/1")]),
        (runware(IMAGE_1), [("imageURL", f"https://im.runware.ai/image/ws/0.5/ii/{IMAGE_1}.jpg")]),
        ({"videoURL": "https://v/1.mp4"}, [("videoURL", "https://v/1.mp4")]),  # Runware video
        ({"audioURL": "https://a/1.mp3"}, [("audioURL", "https://a/1.mp3")]),  # Runware audio
        ({"mediaURL": "https://m/1"}, [("mediaURL", "https://m/1")]),  # Runware media
        (
            {"outputs": {"files": [{"uuid": "u", "url": "https://3d/1.glb"}]}},
            [("outputs.files[0].url", "https://3d/1.glb")],
        ),  # Runware 3D
        ({"output": {"error": {"code": "x", "message": "y"}}}, []),  # a failed run: no outputs
        ({"output": None}, []),  # a cancelled run
    ],
)
def test_output_urls_in_each_known_place(payload: object, found: list[tuple[str, str]]) -> None:
    assert urls(payload) == found


def test_all_60_headshots_in_order() -> None:
    refs = output_refs(HEADSHOTS)

    assert [ref.path for ref in refs] == [f"image_urls[{n}]" for n in range(60)]
    assert [ref.url for ref in refs] == HEADSHOTS["image_urls"]


def test_an_entry_describes_its_url() -> None:
    entry = {
        "type": "image",
        "url": "https://cdn.example.com/out.png",
        "content_type": "image/png",
        "size": 1234,
        "sha256": "AB" * 32,
        "expires_at": "2026-05-07T10:00:00.000000+00:00",
    }

    (ref,) = output_refs({"output": {"outputs": [entry]}})

    assert ref == OutputRef(
        path="output.outputs[0].url",
        url="https://cdn.example.com/out.png",
        expires_at=datetime(2026, 5, 7, 10, 0, tzinfo=UTC),
        sha256="ab" * 32,
        content_type="image/png",
        size=1234,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("expires_at", "tomorrow"),  # not ISO 8601
        ("expires_at", 1e300),  # out of any calendar
        ("expires_at", True),  # a boolean, not unix seconds
        ("sha256", "abc"),  # too short
        ("sha256", "z" * 64),  # not hex
        ("size", -1),  # negative
        ("size", "12"),  # a string
        ("size", 2**64),  # past any real file
        ("content_type", ""),  # empty
        ("content_type", ["image/png"]),  # a list
    ],
)
def test_unusable_entry_fields_read_as_absent(field: str, value: object) -> None:
    entry = {"url": "https://cdn.example.com/out.png", field: value}

    (ref,) = output_refs({"output": {"outputs": [entry]}})

    assert getattr(ref, field) is None


def test_unix_seconds_expiry_in_an_entry() -> None:
    entry = {"url": "https://a/1", "expires_at": 1778061600}

    (ref,) = output_refs({"output": {"outputs": [entry]}})

    assert ref.expires_at == datetime(2026, 5, 6, 10, 0, tzinfo=UTC)


def test_naive_expiry_in_an_entry_is_utc() -> None:
    entry = {"url": "https://a/1", "expires_at": "2026-05-07T10:00:00"}

    (ref,) = output_refs({"output": {"outputs": [entry]}})

    assert ref.expires_at == datetime(2026, 5, 7, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "path", "found"),
    [
        (
            {"result": {"files": [{"href": "https://f/1"}, {"href": "https://f/2"}]}},
            "result.files[].href",
            [("result.files[0].href", "https://f/1"), ("result.files[1].href", "https://f/2")],
        ),  # every element of a list
        (
            {"result": {"files": [{"href": "https://f/1"}, {"href": "https://f/2"}]}},
            "result.files[1].href",
            [("result.files[1].href", "https://f/2")],
        ),  # one element
        (
            {"a": [["https://f/1"], ["https://f/2"]]},
            "a[][0]",
            [("a[0][0]", "https://f/1"), ("a[1][0]", "https://f/2")],
        ),  # nested lists
        ([{"url": "https://f/1"}], "[].url", [("[0].url", "https://f/1")]),  # a list payload
        ({"result": {"files": "https://f/1"}}, "result.files[].href", []),  # not a list
        ({"result": {"files": [{"href": "https://f/1"}]}}, "result.files[5].href", []),  # past end
        ({"result": [1, None, {"href": 3}]}, "result[].href", []),  # junk elements
    ],
)
def test_extra_paths(payload: object, path: str, found: list[tuple[str, str]]) -> None:
    assert urls(payload, path) == found


def test_extra_paths_come_after_the_known_places() -> None:
    payload = {"result": {"href": "https://f/extra"}, "imageURL": "https://f/known"}

    assert urls(payload, "result.href") == [
        ("imageURL", "https://f/known"),
        ("result.href", "https://f/extra"),
    ]


def test_an_extra_path_naming_a_known_place_gives_one_ref() -> None:
    assert urls(runware(IMAGE_1), "imageURL") == urls(runware(IMAGE_1))


def test_the_same_url_in_two_places_is_two_refs() -> None:
    payload = {"image_urls": ["https://a/1"], "output": {"image_urls": ["https://a/1"]}}

    assert [path for path, _ in urls(payload)] == ["output.image_urls[0]", "image_urls[0]"]


def test_metadata_urls_are_never_outputs() -> None:
    payload = RUN_CALLBACK | {
        "metadata": {
            "imageURL": "https://evil/1",
            "image_urls": ["https://evil/2"],
            "output": {"outputs": [{"url": "https://evil/3"}]},
        }
    }

    assert urls(payload) == [("output.outputs[0].url", "https://cdn.example.com/out.png")]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://cdn.example.com/out.png",  # not http(s)
        "file:///etc/passwd",  # a local file
        "data:image/png;base64,iVBORw0KGgo=",  # Runware's dataURI output type
        "iVBORw0KGgoAAAANSUhEUgAAAAE=",  # Runware's base64Data output type
        "//cdn.example.com/out.png",  # no scheme
        "https://",  # no host
        "https://cdn.example.com/a b",  # whitespace
        "https://[::1/out.png",  # an unclosed IPv6 bracket
        "",  # empty
        "https://a/" + "x" * 20000,  # longer than any presigned URL
    ],
)
def test_non_http_urls_are_ignored(url: str) -> None:
    assert urls({"imageURL": url, "image_urls": [url, 7, None]}) == []


@pytest.mark.parametrize(
    "payload",
    [None, 1, "https://a/1", [None, [], {}], {"output": [1]}, {"output": {"outputs": {"url": 1}}}],
)
def test_junk_payloads_have_no_outputs(payload: object) -> None:
    assert output_refs(payload) == []


@pytest.mark.parametrize(
    "path",
    [
        "",  # empty
        "a..b",  # an empty key
        "a.",  # a trailing dot
        "a[x]",  # not an index
        "a[",  # an unclosed bracket
        "a.[].b",  # brackets without a key after the first part
        "metadata.url",  # metadata is never read
        "output.metadata[].url",  # ...at any depth
        "a" * 301,  # too long
        ".".join(["a"] * 33),  # too many steps
    ],
)
def test_bad_extra_paths_raise_config_error(path: str) -> None:
    with pytest.raises(ConfigError):
        parse_output_path(path)


def test_parsed_path_steps() -> None:
    assert parse_output_path("result.files[].href[2]") == ("result", "files", None, "href", 2)


# --- expiry ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expires"),
    [
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Date=20260506T100000Z&X-Amz-Expires=3600&X-Amz-Signature=ab",
            datetime(2026, 5, 6, 11, 0, tzinfo=UTC),
        ),  # AWS SigV4
        (
            "https://b/k?x-amz-date=20260506T100000Z&x-amz-expires=604800",
            datetime(2026, 5, 13, 10, 0, tzinfo=UTC),
        ),  # SigV4 names in lower case, the 7-day maximum
        (
            "https://storage.googleapis.com/b/k?X-Goog-Algorithm=GOOG4-RSA-SHA256"
            "&X-Goog-Date=20260506T100000Z&X-Goog-Expires=900&X-Goog-Signature=ab",
            datetime(2026, 5, 6, 10, 15, tzinfo=UTC),
        ),  # GCS v4
        (
            "https://b.s3.amazonaws.com/k?AWSAccessKeyId=A&Expires=1778065200&Signature=x",
            datetime(2026, 5, 6, 11, 0, tzinfo=UTC),
        ),  # AWS SigV2
        (
            "https://d111.cloudfront.net/k.png?Expires=1778065200&Signature=x&Key-Pair-Id=K",
            datetime(2026, 5, 6, 11, 0, tzinfo=UTC),
        ),  # CloudFront canned policy
        (
            "https://runback.example.com/files/runs/r/0.png?expires=1778065200&signature=ab",
            datetime(2026, 5, 6, 11, 0, tzinfo=UTC),
        ),  # runback's own /files URL
        (
            "https://acct.blob.core.windows.net/c/k?sv=2022-11-02&se=2026-05-06T11%3A00%3A00Z"
            "&sr=b&sp=r&sig=ab",
            datetime(2026, 5, 6, 11, 0, tzinfo=UTC),
        ),  # Azure SAS
        (
            "https://b/k?X-Amz-Date=20260506T100000Z&X-Amz-Expires=60&Expires=1",
            datetime(2026, 5, 6, 10, 1, tzinfo=UTC),
        ),  # SigV4 wins over Expires
        (
            "https://b/k?Expires=1778065200&Expires=1",
            datetime(2026, 5, 6, 11, 0, tzinfo=UTC),
        ),  # the first of a repeated name
    ],
)
def test_expiry_from_the_presigned_query(url: str, expires: datetime) -> None:
    assert url_expiry(url, received_at=RECEIVED_AT) == expires


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.com/out.png",  # nothing presigned
        "https://b/k?X-Amz-Date=20260506T100000Z",  # a date without a lifetime
        "https://b/k?X-Amz-Expires=3600",  # a lifetime without a date
        "https://b/k?X-Amz-Date=2026-05-06&X-Amz-Expires=3600",  # the wrong date form
        "https://b/k?X-Amz-Date=20261399T999999Z&X-Amz-Expires=3600",  # no such date
        "https://b/k?X-Amz-Date=20260506T100000Z&X-Amz-Expires=-5",  # a negative lifetime
        "https://b/k?X-Amz-Date=99991231T235959Z&X-Amz-Expires=999999999",  # past year 9999
        "https://b/k?X-Goog-Date=20260506T100000Z&X-Goog-Expires=1e3",  # not an integer
        "https://b/k?Expires=soon",  # not unix seconds
        "https://b/k?Expires=99999999999999999999",  # unix seconds out of any calendar
        "https://b/k?Expires=",  # blank
        "https://b/k?se=2026-05-06T11:00:00Z",  # an Azure expiry without a signature
        "https://b/k?se=whenever&sig=ab",  # an Azure expiry that is not a time
        "https://[::1/k?Expires=1778065200",  # a URL urlsplit refuses
        "not a url at all",  # nothing URL-like
        "",  # empty
    ],
)
def test_unreadable_expiry_falls_back_to_the_default(url: str) -> None:
    assert url_expiry(url, received_at=RECEIVED_AT) == RECEIVED_AT + DEFAULT_URL_LIFETIME


def test_the_default_lifetime_is_24_hours_and_configurable() -> None:
    assert timedelta(hours=24) == DEFAULT_URL_LIFETIME
    assert url_expiry("https://a/1", received_at=RECEIVED_AT, default=timedelta(hours=2)) == (
        RECEIVED_AT + timedelta(hours=2)
    )


def test_an_already_expired_url_says_so() -> None:
    url = "https://b/k?Expires=1778000000"

    assert url_expiry(url, received_at=RECEIVED_AT) < RECEIVED_AT


def test_the_payloads_expires_at_wins_over_the_urls() -> None:
    entry = {
        "url": "https://b/k?Expires=1778065200",
        "expires_at": "2026-05-06T10:30:00+00:00",
    }
    (ref,) = output_refs({"output": {"outputs": [entry]}})

    assert ref_expiry(ref, received_at=RECEIVED_AT) == datetime(2026, 5, 6, 10, 30, tzinfo=UTC)


def test_without_expires_at_a_ref_expires_by_its_url() -> None:
    (ref,) = output_refs({"imageURL": "https://b/k?Expires=1778065200"})

    assert ref_expiry(ref, received_at=RECEIVED_AT) == datetime(2026, 5, 6, 11, 0, tzinfo=UTC)


def test_without_either_a_ref_expires_after_the_default() -> None:
    (ref,) = output_refs({"imageURL": "https://b/k"})

    assert ref_expiry(ref, received_at=RECEIVED_AT, default=timedelta(hours=1)) == (
        RECEIVED_AT + timedelta(hours=1)
    )
