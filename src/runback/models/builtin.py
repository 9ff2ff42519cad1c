"""The built-in demo models: ``runback/echo``, ``runback/sleep``, ``runback/fail``,
``runback/thumbnail`` and the seed's example, ``runflow/background-replace``."""

from __future__ import annotations

import asyncio
from typing import Any

from runback.core import headshots as headshots_door
from runback.core import runware
from runback.errors import ModelError
from runback.models import background_replace, headshots, image_inference, thumbnail
from runback.provider.context import RunContext
from runback.provider.registry import ModelRegistry

MAX_SLEEP_SECONDS = 3600.0
MAX_STEPS = 100_000


async def echo(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
    """Returns its input."""
    return input


async def sleep(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
    """Waits ``input.seconds`` (at most an hour) in ``input.steps`` steps (default 1, at
    most 100,000), logging a line and reporting progress after each; then returns how long
    it slept. A run that asks for ``logs`` events watches it go."""
    seconds = input.get("seconds", 1)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ModelError("input.seconds must be a number", code="invalid_input")
    if not 0 <= seconds <= MAX_SLEEP_SECONDS:
        raise ModelError(
            f"input.seconds must be between 0 and {MAX_SLEEP_SECONDS:g}", code="invalid_input"
        )
    steps = input.get("steps", 1)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ModelError(
            f"input.steps must be a whole number from 1 to {MAX_STEPS}", code="invalid_input"
        )
    for step in range(1, steps + 1):
        await asyncio.sleep(seconds / steps)
        context.log(f"step {step} of {steps}")
        context.progress(step / steps, f"slept {seconds * step / steps:g} s")
    return {"slept": seconds}


async def fail(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
    """Fails with ``input.message`` (and ``input.code``, default ``model_error``)."""
    message = str(input.get("message", "failed on purpose"))
    raise ModelError(message, code=str(input.get("code", "model_error")))


def register_builtins(registry: ModelRegistry) -> ModelRegistry:
    """Add the built-in models to ``registry``."""
    registry.register("runback/echo", echo)
    registry.register("runback/sleep", sleep, timeout=MAX_SLEEP_SECONDS + 60)
    registry.register("runback/fail", fail)
    registry.register(
        "runflow/background-replace",
        background_replace.background_replace,
        timeout=background_replace.TIMEOUT,
        input_model=background_replace.BackgroundReplaceInput,
        concurrency=background_replace.CONCURRENCY,
    )
    registry.register(
        headshots_door.MODEL,
        headshots.generate_headshots,
        timeout=headshots.TIMEOUT,
        input_model=headshots.HeadshotsInput,
        concurrency=headshots.CONCURRENCY,
        callback=headshots_door.callback_body,
    )
    registry.register(
        runware.MODEL,
        image_inference.image_inference,
        timeout=image_inference.TIMEOUT,
        input_model=image_inference.ImageInferenceInput,
        concurrency=image_inference.CONCURRENCY,
        callback=runware.ended_body,
        result_callback=runware.result_body,
        retry=runware.LADDER,
    )
    registry.register(
        "runback/thumbnail",
        thumbnail.thumbnail,
        timeout=thumbnail.TIMEOUT,
        input_model=thumbnail.ThumbnailInput,
        concurrency=thumbnail.CONCURRENCY,
    )
    return registry
