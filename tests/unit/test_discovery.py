"""Loading users' models from modules and entry points, written at test time into a directory
on ``sys.path``; every mistake is a one-line ``ConfigError`` naming where it is."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from runback.errors import ConfigError
from runback.models import register_builtins
from runback.provider.context import RunContext
from runback.provider.discovery import load_models
from runback.provider.registry import ModelRegistry
from runback.store import Store
from runback.testing import ManualClock
from support.api import api_client

WITH_REGISTRY = '''
from typing import Any

from runback.provider.registry import ModelRegistry

models = ModelRegistry()


@models.model("acme/shout", timeout=5)
async def shout(input: dict[str, Any], context: object) -> dict[str, Any]:
    """Shouts input.text."""
    return {"text": str(input["text"]).upper()}
'''

WITH_REGISTER = '''
from typing import Any

from runback.provider.registry import ModelRegistry


def whisper(input: dict[str, Any], context: object) -> dict[str, Any]:
    """Whispers input.text."""
    return {"text": str(input["text"]).lower()}


def register(registry: ModelRegistry) -> None:
    registry.register("acme/whisper", whisper)
'''


class Site:
    """A directory on ``sys.path`` holding modules and installed-looking distributions."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self._root = root
        self._monkeypatch = monkeypatch

    def module(self, name: str, source: str) -> str:
        # imported afresh, and forgotten after the test: the next one writes it elsewhere
        self._monkeypatch.delitem(sys.modules, name, raising=False)
        (self._root / f"{name}.py").write_text(source)
        importlib.invalidate_caches()
        return name

    def distribution(self, name: str, entry_points: str) -> None:
        """A distribution as an installer leaves it: a ``.dist-info`` directory."""
        info = self._root / f"{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[runback.models]\n{entry_points}\n")
        importlib.invalidate_caches()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.syspath_prepend(str(tmp_path))
    return Site(tmp_path, monkeypatch)


def test_a_module_with_a_models_registry_adds_its_models(site: Site) -> None:
    registry = ModelRegistry()

    load_models(registry, [site.module("my_models", WITH_REGISTRY)], entry_points=False)

    model = registry.get("acme/shout")
    assert model is not None
    assert (model.is_async, model.timeout, model.description) == (True, 5, "Shouts input.text.")


def test_a_module_with_a_register_function_adds_its_models(site: Site) -> None:
    registry = ModelRegistry()

    load_models(registry, [site.module("my_register", WITH_REGISTER)], entry_points=False)

    model = registry.get("acme/whisper")
    assert model is not None
    assert not model.is_async


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("my_models:models", "acme/shout"),  # a registry
        ("my_models:register", "acme/whisper"),  # a register function
    ],
)
def test_an_entry_point_of_an_installed_distribution_adds_its_models(
    site: Site, target: str, name: str
) -> None:
    site.module("my_models", WITH_REGISTRY + WITH_REGISTER)
    site.distribution("my_models", f"acme = {target}")
    registry = ModelRegistry()

    load_models(registry)

    assert registry.get(name) is not None


def test_load_models_answers_the_modules_and_entry_points_it_loaded(site: Site) -> None:
    site.module("my_models", WITH_REGISTRY)
    site.distribution("my_models", "acme = my_models:models")

    loaded = load_models(ModelRegistry(), [site.module("my_register", WITH_REGISTER)])

    assert loaded == ["my_register", "entry point acme"]


def test_entry_points_are_left_alone_when_asked(site: Site) -> None:
    site.module("my_models", WITH_REGISTRY)
    site.distribution("my_models", "acme = my_models:models")
    registry = ModelRegistry()

    assert load_models(registry, entry_points=False) == []
    assert len(registry) == 0


async def test_a_model_from_an_entry_point_is_listed_and_runs(
    site: Site, store: Store, clock: ManualClock
) -> None:
    site.module("my_models", WITH_REGISTRY)
    site.distribution("my_models", "acme = my_models:models")
    registry = register_builtins(ModelRegistry())
    load_models(registry)

    async with api_client(store, clock, registry=registry) as api:
        listed = {m["name"]: m for m in (await api.get("/v1/models")).json()["items"]}
        run_id = await api.run_id({"input": {"text": "hi"}}, model="acme/shout")
        await api.harness.executor.run_until_idle()
        run = (await api.get(f"/v1/runs/{run_id}")).json()

    assert listed["acme/shout"]["is_async"] is True
    assert listed["acme/shout"]["description"] == "Shouts input.text."
    assert (run["status_code"], run["output"]) == ("succeeded", {"text": "HI"})


BROKEN_IMPORT = "import my_missing_dependency\n"
NEITHER = "value = 1\n"
MODELS_NOT_A_REGISTRY = "models = ['acme/shout']\n"
SAME_NAME_AS_BUILTIN = WITH_REGISTRY.replace('"acme/shout"', '"runback/echo"')
REGISTERS_TWICE = WITH_REGISTER.replace(
    'registry.register("acme/whisper", whisper)',
    'registry.register("acme/whisper", whisper)\n    registry.register("acme/whisper", whisper)',
)
RAISES_WHILE_REGISTERING = "def register(registry):\n    raise RuntimeError('no GPU here')\n"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (None, ["my_broken is not found", "PYTHONPATH"]),  # no such module
        (BROKEN_IMPORT, ["my_broken failed to import", "my_missing_dependency"]),  # its import
        (NEITHER, ["my_broken has neither 'models'", "define one"]),  # nothing to load
        (MODELS_NOT_A_REGISTRY, ["my_broken", "its 'models' is a list"]),  # the wrong 'models'
        (SAME_NAME_AS_BUILTIN, ["module my_broken brings runback/echo", "rename"]),  # duplicate
        (REGISTERS_TWICE, ["module my_broken", "acme/whisper is registered twice"]),  # itself
        (RAISES_WHILE_REGISTERING, ["module my_broken failed to register", "no GPU"]),  # raises
    ],
)
def test_a_bad_models_module_is_a_config_error_naming_it(
    site: Site, source: str | None, expected: list[str]
) -> None:
    if source is not None:
        site.module("my_broken", source)
    registry = register_builtins(ModelRegistry())

    with pytest.raises(ConfigError) as raised:
        load_models(registry, ["my_broken"], entry_points=False)

    message = str(raised.value)
    assert "\n" not in message
    for part in expected:
        assert part in message


async def taken(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
    """Already serves the name the entry point brings."""
    return input


@pytest.mark.parametrize(
    ("entry_point", "expected"),
    [
        ("acme = my_gone:models", ["entry point acme", "failed to load", "my_gone"]),  # no module
        ("acme = my_models:nothing", ["entry point acme", "nothing"]),  # no attribute
        # a value, neither a registry nor a function
        ("acme = my_models:NUMBER", ["entry point acme", "of type int", "point it at"]),
        ("acme = my_models:models", ["entry point acme", "brings acme/shout"]),  # duplicate
    ],
)
def test_a_bad_entry_point_is_a_config_error_naming_it(
    site: Site, entry_point: str, expected: list[str]
) -> None:
    site.module("my_models", WITH_REGISTRY + "NUMBER = 3\n")
    site.distribution("my_models", entry_point)
    registry = ModelRegistry()
    registry.register("acme/shout", taken)

    with pytest.raises(ConfigError) as raised:
        load_models(registry)

    message = str(raised.value)
    assert "\n" not in message
    for part in expected:
        assert part in message
