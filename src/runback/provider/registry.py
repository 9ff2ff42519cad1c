"""Models: functions registered under an ``owner/name``.

A model takes the run's input and a context and returns its output (a JSON object). An
``async def`` model runs on the event loop and gets a ``RunContext``; a plain ``def`` model runs
in a bounded thread pool and gets a ``SyncRunContext``. With an ``input_model`` (pydantic), the
input is validated when the run is submitted (a ``422`` names each bad field) and the model
receives the validated instance instead of a dict. Raising ``ModelError`` fails the run with
the chosen ``failure_code``; any other exception fails it with ``model_error``; running past
its timeout, with ``timeout``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from runback.core.records import JsonText, Run, RunResult
from runback.core.retry import RetryPolicy
from runback.errors import ConfigError

ModelFunction = Callable[..., Any]
"""``async def f(input, context) -> dict`` or ``def f(input, context) -> dict``."""

CallbackBody = Callable[[Run, JsonText | None], bytes | None]
"""The body of an ended run's callback, from the run and its output with signed URLs; None
sends none (a front door whose results were its callbacks)."""
ResultBody = Callable[[Run, RunResult, JsonText], bytes]
"""The body of one result's callback, from the run, the result and its data (the file's
entry, URL signed, under ``output``)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)+")


@dataclass(frozen=True, slots=True)
class Model:
    """A registered model and its limits."""

    name: str
    function: ModelFunction
    timeout: float | None
    description: str
    input_model: type[BaseModel] | None = None
    concurrency: int | None = None
    """Runs of this model executing at once, at most; more wait in ``queued``."""
    url_ttl: float | None = None
    """Seconds its output URLs stay valid, overriding the deployment's rule."""
    callback: CallbackBody | None = None
    """Its own callback body (a front door's shape), instead of the run callback's."""
    result_callback: ResultBody | None = None
    """Its own body for each result's callback, instead of ``run.result``'s."""
    retry: RetryPolicy | None = None
    """The retry ladder of its callbacks, instead of the deployment's."""

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of the input: the input model's, else any JSON object."""
        if self.input_model is None:
            return {"type": "object"}
        return self.input_model.model_json_schema()


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
        input_model: type[BaseModel] | None = None,
        concurrency: int | None = None,
        url_ttl: float | None = None,
        callback: CallbackBody | None = None,
        result_callback: ResultBody | None = None,
        retry: RetryPolicy | None = None,
    ) -> Model:
        """Register ``function`` as model ``name`` (``owner/name``, more segments allowed);
        ``callback`` and ``result_callback`` make its runs' callback bodies and ``retry``
        their ladder (for a front door's own shapes and schedule)."""
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"model name {name!r} must be 'owner/name': segments of letters, digits, '.', "
                "'_' or '-', separated by '/'"
            )
        if name in self._models:
            raise ConfigError(f"model {name} is registered twice")
        for setting, value in (("timeout", timeout), ("url_ttl", url_ttl)):
            if value is not None and value <= 0:
                raise ConfigError(f"model {name}: {setting} must be positive")
        if concurrency is not None and concurrency < 1:
            raise ConfigError(f"model {name}: concurrency must be at least 1")
        doc = description if description is not None else (function.__doc__ or "")
        model = Model(
            name=name,
            function=function,
            timeout=timeout,
            description=doc.strip().split("\n")[0],
            input_model=input_model,
            concurrency=concurrency,
            url_ttl=url_ttl,
            callback=callback,
            result_callback=result_callback,
            retry=retry,
        )
        self._models[name] = model
        return model

    def model(
        self,
        name: str,
        *,
        timeout: float | None = None,
        input_model: type[BaseModel] | None = None,
        concurrency: int | None = None,
        url_ttl: float | None = None,
    ) -> Callable[[ModelFunction], ModelFunction]:
        """Decorator form of ``register``."""

        def decorate(function: ModelFunction) -> ModelFunction:
            self.register(
                name,
                function,
                timeout=timeout,
                input_model=input_model,
                concurrency=concurrency,
                url_ttl=url_ttl,
            )
            return function

        return decorate

    def include(self, other: ModelRegistry) -> None:
        """Add every model of ``other`` (a user's module's registry)."""
        for model in other:
            if model.name in self._models:
                raise ConfigError(f"model {model.name} is registered twice")
            self._models[model.name] = model

    def get(self, name: str) -> Model | None:
        return self._models.get(name)

    def names(self) -> set[str]:
        """The names of every model served."""
        return set(self._models)

    def __iter__(self) -> Iterator[Model]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)
