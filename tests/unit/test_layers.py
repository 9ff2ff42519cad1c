"""The layout's arrows, read from the source: the core imports nothing of runback but itself
and the errors; the light part (the core, the receiver library, ``runback verify``, the API
client) nothing of the server; the shared packages and the receiving service never reach
into the serving half; and nothing below the edge sees ``Settings``: components take their
group of ``runback.config``. (What verifying loads at run time is ``test_import_boundary``'s
concern.)"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

import runback

SOURCE = Path(runback.__file__).parent

LIGHT = ("runback.core", "runback.errors", "runback.wording", "runback.receiver")
"""What ``pip install runback`` needs of runback itself."""

ONLY = {
    "runback.core": ("runback.core", "runback.errors"),
    "runback.config": ("runback.core", "runback.errors"),
    "runback.receiver": LIGHT,
    "runback.cli.verify": LIGHT,
    "runback.client": (*LIGHT, "runback.client"),
}
"""A package and the only runback modules it may import."""

SHARED = ("runback.web", "runback.store", "runback.blobs", "runback.pruner", "runback.work_loop",
          "runback.process", "runback.http_server", "runback.metrics")  # fmt: skip
DASHBOARD_SHARED = tuple(
    f"runback.dashboard.{name}"
    for name in ("config", "csrf", "forms", "formatting", "login", "sessions", "site", "templating")
)
"""The dashboard's infrastructure, which the receiver's pages build on as the provider's do."""
NEVER = {
    **dict.fromkeys((*SHARED, *DASHBOARD_SHARED), ("runback.provider", "runback.receiving")),
    "runback.outbound": ("runback.provider", "runback.receiving", "runback.store"),
    "runback.receiving": ("runback.provider",),
    "runback.dashboard.receiver": ("runback.provider", "runback.dashboard.provider"),
}
"""A package (or module) and the runback modules it must not import."""

EDGE = ("runback.cli", "runback.settings")
"""Where settings are read; everything else takes its group."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] == "runback"}


def _modules(package: str) -> list[tuple[str, set[str]]]:
    base = SOURCE.parent.joinpath(*package.split("."))
    paths = [base.with_suffix(".py")] if base.with_suffix(".py").exists() else base.rglob("*.py")
    return [(_module_name(p), _imports(p)) for p in sorted(paths)]


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _strays(package: str, *, allowed: Callable[[str], bool]) -> set[tuple[str, str]]:
    """Each ``(module, import)`` of ``package`` that ``allowed`` refuses."""
    modules = _modules(package)
    assert modules, f"no modules found for {package}"
    return {(module, name) for module, names in modules for name in names if not allowed(name)}


@pytest.mark.parametrize("package", sorted(ONLY))
def test_a_package_imports_only_what_it_may(package: str) -> None:
    only = ONLY[package]
    assert not _strays(package, allowed=lambda name: name == "runback" or _within(name, only))


@pytest.mark.parametrize("package", sorted(NEVER))
def test_a_package_never_reaches_into_what_serves_it(package: str) -> None:
    assert not _strays(package, allowed=lambda name: not _within(name, NEVER[package]))


def test_nothing_below_the_edge_imports_settings() -> None:
    below = [name for name in _every_package() if not _within(name, EDGE)]
    assert len(below) > 10, below
    strays = {
        stray
        for package in below
        for stray in _strays(package, allowed=lambda name: not _within(name, ("runback.settings",)))
    }
    assert not strays


def _every_package() -> list[str]:
    return sorted({_module_name(path) for path in SOURCE.rglob("*.py")} - {"runback"})


def test_the_walk_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom runback.outbound.sender import classify\n")

    assert _imports(sample) == {"runback.outbound.sender"}
