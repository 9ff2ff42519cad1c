"""Two models as users write them, served with:

    PYTHONPATH=examples runback serve --models acme_models

``acme/greet`` is async, validates its input with pydantic and saves a file; ``acme/count``
is a plain function, run in a worker thread, at most two at a time.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runback import ModelError, ModelRegistry, RunContext, SyncRunContext

models = ModelRegistry()


class Greeting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    times: int = Field(default=1, ge=1, le=10)


@models.model("acme/greet", input_model=Greeting, timeout=30)
async def greet(input: Greeting, context: RunContext) -> dict[str, Any]:
    """Greets someone, and saves the greeting as a text file."""
    text = " ".join([f"Hello, {input.name}!"] * input.times)
    await context.save_output(text.encode(), content_type="text/plain")
    return {"greeting": text}


@models.model("acme/count", concurrency=2)
def count(input: dict[str, Any], context: SyncRunContext) -> dict[str, Any]:
    """Counts the words of ``input.text``."""
    text = input.get("text")
    if not isinstance(text, str):
        raise ModelError("input.text must be a string", code="invalid_input")
    return {"words": len(text.split())}
