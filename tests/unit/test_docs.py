"""The docs keep up with the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from runback.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_in_the_configuration_table(name: str) -> None:
    assert f"`RUNBACK_{name.upper()}`" in (DOCS / "configuration.md").read_text()
