"""Loading users' models: from modules named on the command line and from entry points.

A module named with ``runback serve --models my.package.module`` exposes either ``models``, a
``ModelRegistry``, or ``register(registry)``, a function that registers its models. An
installed distribution declares the same under the entry point group ``runback.models``
(``name = module:attribute``). Every failure is a ``ConfigError`` whose one line names the
module or entry point and what to do, because it stops the server at start-up.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import cast

from runback.errors import ConfigError
from runback.provider.registry import ModelRegistry

ENTRY_POINT_GROUP = "runback.models"

Registrar = Callable[[ModelRegistry], object]
"""A user's ``register(registry)``."""
Provided = ModelRegistry | Registrar
"""What a module or an entry point gives: a registry, or a function that registers."""


def load_models(
    registry: ModelRegistry, modules: Sequence[str] = (), *, entry_points: bool = True
) -> list[str]:
    """Add the models of ``modules``, then of every ``runback.models`` entry point, to
    ``registry``; answers what was loaded (module names and ``entry point <name>``)."""
    loaded: list[str] = []
    for name in modules:
        _add(registry, _module_models(_import(name), name), f"module {name}")
        loaded.append(name)
    if entry_points:
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            source = f"entry point {entry_point.name} ({entry_point.value})"
            _add(registry, _entry_point_models(entry_point, source), source)
            loaded.append(f"entry point {entry_point.name}")
    return loaded


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(f"{exc.name}.")):
            raise ConfigError(
                f"models module {name} is not found: check the name and that its package is "
                "installed or on PYTHONPATH"
            ) from exc
        raise _import_failed(name, exc) from exc
    except Exception as exc:
        raise _import_failed(name, exc) from exc


def _import_failed(name: str, exc: Exception) -> ConfigError:
    return ConfigError(
        f"models module {name} failed to import: {_said(exc)}; fix it or install what it needs"
    )


def _module_models(module: ModuleType, name: str) -> Provided:
    models = getattr(module, "models", None)
    if isinstance(models, ModelRegistry):
        return models
    register = getattr(module, "register", None)
    if callable(register):
        return cast(Registrar, register)
    found = "" if models is None else f" (its 'models' is a {type(models).__name__})"
    raise ConfigError(
        f"models module {name} has neither 'models', a ModelRegistry, nor a function "
        f"'register(registry)'{found}: define one of them"
    )


def _entry_point_models(entry_point: importlib.metadata.EntryPoint, source: str) -> Provided:
    try:
        provided = entry_point.load()
    except Exception as exc:
        raise ConfigError(
            f"{source} failed to load: {_said(exc)}; fix or uninstall its distribution"
        ) from exc
    if isinstance(provided, ModelRegistry):
        return provided
    if callable(provided):
        return cast(Registrar, provided)
    raise ConfigError(
        f"{source} gives a value of type {type(provided).__name__}, not a ModelRegistry "
        "or a function register(registry): point it at one of them"
    )


def _add(registry: ModelRegistry, provided: Provided, source: str) -> None:
    if isinstance(provided, ModelRegistry):
        _refuse_taken(registry, provided, source)
        registry.include(provided)
        return
    try:
        provided(registry)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    except Exception as exc:
        raise ConfigError(f"{source} failed to register its models: {_said(exc)}") from exc


def _refuse_taken(registry: ModelRegistry, provided: ModelRegistry, source: str) -> None:
    taken = sorted(model.name for model in provided if registry.get(model.name) is not None)
    if taken:
        raise ConfigError(
            f"{source} brings {', '.join(taken)}, already served: rename its model or load "
            "only one of the modules that define it"
        )


def _said(exc: BaseException) -> str:
    """An exception in one line: its type and its first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
