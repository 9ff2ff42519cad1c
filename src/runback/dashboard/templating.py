"""Jinja2 templates, autoescaped, looked up in the dashboard's own ``templates/`` and in any
package an app adds (the receiver's pages bring theirs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined

from runback.dashboard import formatting


def environment(packages: Sequence[str] = ()) -> Environment:
    """Templates of ``packages`` (each a package with a ``templates/`` folder), then ours:
    an app's page of the same name wins."""
    loaders = [PackageLoader(package, "templates") for package in packages]
    env = Environment(
        loader=ChoiceLoader([*loaders, PackageLoader("runback.dashboard", "templates")]),
        autoescape=True,  # every template, whatever its name: all of them are HTML
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(formatting.FILTERS)
    return env


def render(env: Environment, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """The page ``name`` rendered with ``context``."""
    return HTMLResponse(env.get_template(name).render(context), status_code=status)
