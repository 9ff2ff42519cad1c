"""``AiohttpSender`` against a real HTTP server on loopback (CONTRACT §6).

One POST per attempt: exact bytes out, the URL untouched, no redirect followed, no cookie kept,
the answer's body kept up to ``RESPONSE_BODY_LIMIT`` bytes, and network trouble reported as a
``SendError`` rather than raised.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping

import pytest
from aiohttp import web

from runback.core.delivery import RESPONSE_BODY_LIMIT, FailureReason, SendError
from runback.outbound.sender import AiohttpSender, OutboundRequest
from support.receivers import LoopbackReceiver, answer, block_until
from support.waiting import wait_for

JSON = {"Content-Type": "application/json"}


def post(
    url: str, body: bytes = b"{}", headers: Mapping[str, str] = JSON, timeout: float = 5.0
) -> OutboundRequest:
    return OutboundRequest(url=url, body=body, headers=headers, timeout=timeout)


def unused_port() -> int:
    """A loopback port that nothing listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_200_answer_gives_its_status_and_body_text() -> None:
    async with LoopbackReceiver(answer(200, "thanks")) as receiver, AiohttpSender() as sender:
        result = await sender.send(post(receiver.url_for("/hook")))

    assert (result.status, result.body, result.error) == (200, "thanks", None)
    assert result.failure_reason is None


async def test_the_request_is_a_post_of_the_exact_body_bytes_and_headers() -> None:
    body = b'{"caf\xc3\xa9": "\xe2\x82\xac", "n": null}\n  '
    headers = {
        "Content-Type": "application/json",
        "Runflow-Signature": "0" * 64,
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "X-Odd": 'a  b, c;d="e"',
    }
    async with LoopbackReceiver() as receiver, AiohttpSender() as sender:
        await sender.send(post(receiver.url_for("/hook"), body, headers))

    [received] = receiver.requests
    assert (received.method, received.body) == ("POST", body)
    for name, value in headers.items():
        assert received.headers.getall(name) == [value]


@pytest.mark.parametrize(
    "path_and_query",
    [
        # the brief's example: an encoded slash and tilde, a '+', an empty value
        "/hook?token=a%2Fb&x=%7E&y=a+b&empty=",
        # lowercase hex and an encoded space stay as they are
        "/hook?a=%7e&b=%20",
        # base64 signatures: '/', '+' and '=' unencoded
        "/hook?sig=AB/cd+ef==",
        # an encoded '+', '=' and '&' must not be decoded into separators
        "/hook?s=a%2bb+c&t=%3D%26",
        # repeated keys, an empty pair and a bare key keep their order
        "/hook?k=v&k=w&&x",
        # a double-encoded value is not decoded once
        "/hook?x=a%20b%2520",
        # an invalid escape and a ';' are passed on, not repaired
        "/hook?d=a;b&e=%zz",
        # an encoded slash and dot segments in the path itself
        "/a%2Fb/./../c?x=1",
    ],
)
async def test_the_url_reaches_the_receiver_byte_for_byte(path_and_query: str) -> None:
    async with LoopbackReceiver() as receiver, AiohttpSender() as sender:
        await sender.send(post(receiver.url_for(path_and_query)))

    assert [r.raw_path for r in receiver.requests] == [path_and_query]


async def test_a_redirect_is_a_3xx_failure_and_is_not_followed() -> None:
    async with LoopbackReceiver() as target, AiohttpSender() as sender:
        moved = answer(302, headers={"Location": target.url_for("/new")})
        async with LoopbackReceiver(moved) as receiver:
            result = await sender.send(post(receiver.url_for("/old")))

    assert (result.status, result.failure_reason) == (302, FailureReason.HTTP_3XX)
    assert [r.raw_path for r in receiver.requests] == ["/old"]
    assert target.requests == []


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (200, None),
        (204, None),  # any 2xx succeeds, even without a body
        (404, FailureReason.HTTP_4XX),
        (410, FailureReason.GONE),  # the receiver's endpoint is gone for good: final
        (500, FailureReason.HTTP_5XX),
        (503, FailureReason.HTTP_5XX),
    ],
)
async def test_the_answers_status_gives_the_failure_reason(
    status: int, reason: FailureReason | None
) -> None:
    async with LoopbackReceiver(answer(status)) as receiver, AiohttpSender() as sender:
        result = await sender.send(post(receiver.url_for("/hook")))

    assert (result.status, result.failure_reason) == (status, reason)


async def test_the_body_of_a_failed_answer_is_kept() -> None:
    handler = answer(500, "database is down")
    async with LoopbackReceiver(handler) as receiver, AiohttpSender() as sender:
        result = await sender.send(post(receiver.url_for("/hook")))

    assert (result.status, result.body) == (500, "database is down")


@pytest.mark.parametrize(
    ("status", "header", "seconds"),
    [
        (429, "7", 7.0),  # rate limited, with a wait
        (503, "3", 3.0),  # unavailable for a while
        (500, "3", None),  # a plain error: the header means nothing
    ],
)
async def test_retry_after_is_read_from_429_and_503(
    status: int, header: str, seconds: float | None
) -> None:
    handler = answer(status, "slow down", headers={"Retry-After": header})
    async with LoopbackReceiver(handler) as receiver, AiohttpSender() as sender:
        result = await sender.send(post(receiver.url_for("/hook")))

    assert result.retry_after == seconds


async def test_an_answer_longer_than_the_limit_is_cut_to_its_first_limit_bytes() -> None:
    long_body = "".join(chr(ord("a") + i % 26) for i in range(RESPONSE_BODY_LIMIT * 10))
    async with LoopbackReceiver(answer(200, long_body)) as receiver, AiohttpSender() as sender:
        result = await sender.send(post(receiver.url_for("/hook")))

    assert result.body == long_body[:RESPONSE_BODY_LIMIT]


async def test_an_answer_cut_inside_a_character_stays_within_the_limit() -> None:
    # 3-byte characters: the limit falls inside one, whose bytes must not turn into more
    long_body = "€" * RESPONSE_BODY_LIMIT
    async with LoopbackReceiver(answer(200, long_body)) as receiver, AiohttpSender() as sender:
        result = await sender.send(post(receiver.url_for("/hook")))

    assert result.body is not None
    assert len(result.body.encode()) <= RESPONSE_BODY_LIMIT
    assert long_body.startswith(result.body)


async def test_an_answer_sent_in_pieces_is_kept_whole_up_to_the_limit() -> None:
    async def in_two_pieces(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first piece; ")
        await asyncio.sleep(0.1)  # the receiver is slow to finish; the test does not wait on it
        await response.write(b"second piece")
        await response.write_eof()
        return response

    async with LoopbackReceiver(in_two_pieces) as receiver, AiohttpSender() as sender:
        result = await sender.send(post(receiver.url_for("/hook")))

    assert (result.status, result.body) == (200, "first piece; second piece")


async def test_a_receiver_slower_than_the_timeout_gives_a_timeout_error() -> None:
    release = asyncio.Event()
    async with (
        LoopbackReceiver(block_until(release)) as receiver,
        AiohttpSender() as sender,
    ):
        try:
            started = time.monotonic()
            result = await sender.send(post(receiver.url_for("/hook"), timeout=0.2))
            waited = time.monotonic() - started
        finally:
            release.set()

    assert (result.status, result.error) == (None, SendError.TIMEOUT)
    assert result.failure_reason is FailureReason.TIMEOUT
    assert result.error_message
    assert waited < 2.0  # the receiver would have held the request until released


async def test_a_port_nobody_listens_on_gives_a_connection_error() -> None:
    async with AiohttpSender() as sender:
        result = await sender.send(post(f"http://127.0.0.1:{unused_port()}/hook"))

    assert (result.status, result.error) == (None, SendError.CONNECTION_ERROR)
    assert result.failure_reason is FailureReason.CONNECTION_ERROR
    assert result.error_message


async def test_a_cookie_set_by_a_receiver_is_not_sent_back() -> None:
    sets_cookie = answer(200, headers={"Set-Cookie": "session=abc; Path=/"})
    async with LoopbackReceiver(sets_cookie) as receiver, AiohttpSender() as sender:
        await sender.send(post(receiver.url_for("/hook")))
        await sender.send(post(receiver.url_for("/hook")))

    assert [r.headers.get("Cookie") for r in receiver.requests] == [None, None]


async def test_a_blocked_receiver_does_not_hold_up_sends_to_another() -> None:
    count = 25  # to each receiver, all at once
    release = asyncio.Event()
    async with (
        LoopbackReceiver(block_until(release)) as slow,
        LoopbackReceiver() as fast,
        AiohttpSender() as sender,
    ):
        slow_sends = [
            asyncio.create_task(sender.send(post(slow.url_for(f"/slow/{i}"), timeout=30)))
            for i in range(count)
        ]
        try:
            async with asyncio.timeout(10):
                fast_results = await asyncio.gather(
                    *(sender.send(post(fast.url_for(f"/fast/{i}"))) for i in range(count))
                )
            await wait_for(lambda: len(slow.requests) == count, what="every slow send arrived")
            still_blocked = not any(task.done() for task in slow_sends)
        finally:
            release.set()
            slow_results = await asyncio.gather(*slow_sends)

    assert [r.status for r in fast_results] == [200] * count
    assert still_blocked
    assert [r.status for r in slow_results] == [200] * count


async def test_a_connection_reset_mid_answer_is_a_connection_error() -> None:
    async def reset(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()  # drop the connection without an answer
        return web.Response()

    async with LoopbackReceiver(reset) as receiver, AiohttpSender() as sender:
        result = await sender.send(post(receiver.url_for("/hook")))

    assert result.error is SendError.CONNECTION_ERROR
    assert result.failure_reason is FailureReason.CONNECTION_ERROR


async def test_a_body_trickling_past_the_timeout_is_a_timeout() -> None:
    release = asyncio.Event()

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        await response.write(b"part")  # headers and a first chunk arrive in time...
        await release.wait()  # ...the rest never does
        return response

    async with LoopbackReceiver(trickle) as receiver, AiohttpSender() as sender:
        try:
            result = await sender.send(post(receiver.url_for("/hook"), timeout=0.3))
        finally:
            release.set()

    assert result.error is SendError.TIMEOUT
