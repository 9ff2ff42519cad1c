"""Models: ``async def`` functions registered under an ``owner/name``.

A model takes the run's input (a JSON object) and a ``RunContext`` and returns its output (a
JSON object). Raising ``ModelError`` fails the run with the chosen ``failure_code``; any
other exception fails it with ``model_error``; running past its timeout, with ``timeout``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from runback.errors import ConfigError
from runback.provider.context import RunContext

ModelFunction = Callable[[dict[str, Any], RunContext], Awaitable[dict[str, Any] | None]]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)+")


@dataclass(frozen=True, slots=True)
class Model:
    """A registered model and its limits."""

    name: str
    function: ModelFunction
    timeout: float | None
    description: str


class ModelRegistry:
    """The models a server runs, by name."""

    def __init__(self) -> None:
        self._models: dict[str, Model] = {}

    def register(
        self,
        name: str,
        function: ModelFunction,
        *,
        timeout: float | None = None,
        description: str | None = None,
    ) -> Model:
        """Register ``function`` as model ``name`` (``owner/name``, more segments allowed)."""
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"model name {name!r} must be 'owner/name': segments of letters, digits, '.', "
                "'_' or '-', separated by '/'"
            )
        if name in self._models:
            raise ConfigError(f"model {name} is registered twice")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"model {name}: timeout must be positive")
        doc = description if description is not None else (function.__doc__ or "")
        model = Model(name, function, timeout, doc.strip().split("\n")[0])
        self._models[name] = model
        return model

    def model(
        self, name: str, *, timeout: float | None = None
    ) -> Callable[[ModelFunction], ModelFunction]:
        """Decorator form of ``register``."""

        def decorate(function: ModelFunction) -> ModelFunction:
            self.register(name, function, timeout=timeout)
            return function

        return decorate

    def get(self, name: str) -> Model | None:
        return self._models.get(name)

    def __iter__(self) -> Iterator[Model]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)
