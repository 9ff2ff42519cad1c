"""The organization's callback deliveries as they are made: what ``runback listen`` follows.

``GET /v1/callback-deliveries/stream`` never ends by itself; a dropped connection is asked
for again with ``Last-Event-ID`` (the last message's cursor), so nothing made in between is
missed, up to ``retries`` times in a row without a new message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator

from runback.client.records import DeliveryMessage
from runback.client.sse import Decoder
from runback.client.transport import Params, Transport
from runback.errors import ApiError, RunbackError, TransportError, UnexpectedAnswerError

STREAM_PATH = "/v1/callback-deliveries/stream"


async def follow(
    transport: Transport, params: Params, last_event_id: str | None
) -> AsyncGenerator[DeliveryMessage, None]:
    """Every delivery message from the stream, resumed where it stopped when it drops."""
    last = last_event_id
    failures = 0
    while True:
        try:
            async for message in _read(transport, params, last):
                failures = 0
                last = message.cursor
                yield message
            failed: RunbackError = TransportError("the delivery stream closed")
        except (TransportError, ApiError) as error:
            # A 4xx (a bad key, a bad filter) would be refused again: say it at once.
            if isinstance(error, ApiError) and error.status < 500:
                raise
            failed = error
        if failures >= transport.retries:
            raise failed
        await transport.pause(failures)
        failures += 1


async def _read(
    transport: Transport, params: Params, last: str | None
) -> AsyncIterator[DeliveryMessage]:
    headers = {"Accept": "text/event-stream"}
    if last is not None:
        headers["Last-Event-ID"] = last
    decoder = Decoder(last_id=last)
    async with transport.stream(STREAM_PATH, headers, params) as response:
        async for line in response.aiter_lines():
            message = decoder.feed(line)
            if message is None or message.event != "delivery":
                continue
            try:
                data = json.loads(message.data)
            except ValueError as exc:
                raise UnexpectedAnswerError(f"a stream message that is not JSON: {exc}") from exc
            yield DeliveryMessage.from_json(data, cursor=message.id)
