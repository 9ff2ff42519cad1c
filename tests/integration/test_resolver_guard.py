"""The resolver guard on a real ``AiohttpSender``, against a receiver on loopback.

Names resolve through a ``StaticResolver`` only, and every name it knows maps to 127.0.0.1:
whatever the guard does, no connection can leave loopback.
"""

from __future__ import annotations

import pytest

from runback.core.delivery import FailureReason, SendError
from runback.core.urlpolicy import UrlPolicy
from runback.errors import ModelError
from runback.outbound.sender import AiohttpSender, OutboundRequest
from runback.provider.fetcher import AiohttpFetcher
from runback.testing import StaticResolver
from support.receivers import LoopbackReceiver, answer

LOOPBACK_ONLY = UrlPolicy.from_allow_list(["127.0.0.0/8"])


def post(url: str) -> OutboundRequest:
    return OutboundRequest(
        url=url, body=b"{}", headers={"Content-Type": "application/json"}, timeout=5.0
    )


def receiver_test() -> StaticResolver:
    return StaticResolver({"receiver.test": ["127.0.0.1"]})


async def test_an_allowed_name_reaches_the_receiver_at_its_checked_address() -> None:
    resolver = receiver_test()
    async with (
        LoopbackReceiver(answer(200, "ok")) as receiver,
        AiohttpSender(resolver=resolver, url_policy=LOOPBACK_ONLY) as sender,
    ):
        result = await sender.send(post(f"http://receiver.test:{receiver.port}/hook"))

    assert (result.status, result.body, result.error) == (200, "ok", None)
    [received] = receiver.requests
    assert received.headers["Host"] == f"receiver.test:{receiver.port}"
    assert resolver.lookups == ["receiver.test"]  # the only name asked: nothing else contacted


async def test_a_name_resolving_to_a_refused_address_is_blocked_before_connecting() -> None:
    async with (
        LoopbackReceiver() as receiver,
        AiohttpSender(resolver=receiver_test(), url_policy=UrlPolicy()) as sender,
    ):
        result = await sender.send(post(f"http://receiver.test:{receiver.port}/hook"))

    assert (result.status, result.error) == (None, SendError.BLOCKED_URL)
    assert result.failure_reason is FailureReason.BLOCKED_URL
    assert "receiver.test resolves to 127.0.0.1" in (result.error_message or "")
    assert receiver.requests == []


async def test_a_refused_literal_address_is_blocked_by_the_sender_itself() -> None:
    # aiohttp never asks the resolver about a literal: the sender checks the URL first.
    async with LoopbackReceiver() as receiver, AiohttpSender(url_policy=UrlPolicy()) as sender:
        result = await sender.send(post(receiver.url_for("/hook")))

    assert (result.status, result.error) == (None, SendError.BLOCKED_URL)
    assert receiver.requests == []


async def test_a_name_that_does_not_resolve_is_a_dns_error() -> None:
    async with (
        LoopbackReceiver() as receiver,
        AiohttpSender(resolver=StaticResolver({}), url_policy=LOOPBACK_ONLY) as sender,
    ):
        result = await sender.send(post(f"http://nowhere.test:{receiver.port}/hook"))

    assert (result.status, result.error) == (None, SendError.DNS_ERROR)
    assert result.failure_reason is FailureReason.DNS_ERROR
    assert "nowhere.test does not resolve" in (result.error_message or "")
    assert receiver.requests == []


async def test_a_tls_handshake_with_a_plain_http_server_is_a_tls_error() -> None:
    async with (
        LoopbackReceiver() as receiver,
        AiohttpSender(resolver=receiver_test(), url_policy=LOOPBACK_ONLY) as sender,
    ):
        result = await sender.send(post(f"https://receiver.test:{receiver.port}/hook"))

    assert (result.status, result.error) == (None, SendError.TLS_ERROR)
    assert result.failure_reason is FailureReason.TLS_ERROR


async def test_input_fetches_through_the_shared_session_are_guarded_too() -> None:
    async with (
        LoopbackReceiver(answer(200, "image")) as receiver,
        AiohttpSender(resolver=receiver_test(), url_policy=UrlPolicy()) as sender,
    ):
        fetcher = AiohttpFetcher(sender.session, url_policy=UrlPolicy())
        with pytest.raises(ModelError, match=r"\(blocked_url\).*resolves to 127\.0\.0\.1"):
            await fetcher.fetch(
                f"http://receiver.test:{receiver.port}/in.png", max_bytes=100, seconds=5
            )
        with pytest.raises(ModelError, match=r"\(dns_error\).*nowhere\.test does not resolve"):
            await fetcher.fetch(
                f"http://nowhere.test:{receiver.port}/in.png", max_bytes=100, seconds=5
            )

    assert receiver.requests == []


async def test_input_fetches_of_an_allowed_name_arrive() -> None:
    async with (
        LoopbackReceiver(answer(200, "image")) as receiver,
        AiohttpSender(resolver=receiver_test(), url_policy=LOOPBACK_ONLY) as sender,
    ):
        fetcher = AiohttpFetcher(sender.session, url_policy=LOOPBACK_ONLY)
        body = await fetcher.fetch(
            f"http://receiver.test:{receiver.port}/in.png", max_bytes=100, seconds=5
        )

    assert body == b"image"
    assert [r.path for r in receiver.requests] == ["/in.png"]
