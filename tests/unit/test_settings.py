"""Settings: defaults, environment variables, flags over variables, one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from runback.errors import ConfigError
from runback.settings import load_settings


def test_the_defaults_serve_loopback_on_a_local_data_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RUNBACK_PORT", raising=False)
    settings = load_settings()
    assert (settings.host, settings.port, settings.data_dir) == (
        "127.0.0.1",
        8000,
        Path("runback-data"),
    )
    assert settings.effective_database_url == "sqlite+aiosqlite:///runback-data/runback.db"


def test_environment_variables_set_values_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBACK_PORT", "9000")
    monkeypatch.setenv("RUNBACK_HOST", "0.0.0.0")
    settings = load_settings(port=9100, host=None)
    assert (settings.host, settings.port) == ("0.0.0.0", 9100)


def test_the_allow_list_is_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBACK_CALLBACK_ALLOW", "127.0.0.0/8, ::1,,localhost")
    assert load_settings().callback_allow == ("127.0.0.0/8", "::1", "localhost")


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"port": 70000}, "--port must be at most 65535"),  # out of range
        ({"attempt_timeout": 0}, "--attempt-timeout must be more than 0"),  # must be positive
        ({"lease_seconds": 10, "attempt_timeout": 10}, "lease_seconds"),  # lease too short
    ],
)
def test_a_bad_value_is_one_config_error_naming_it(
    overrides: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RUNBACK_ATTEMPT_TIMEOUT", "abc", "RUNBACK_ATTEMPT_TIMEOUT must be a number"),
        ("RUNBACK_BREAKER_THRESHOLD", "0", "RUNBACK_BREAKER_THRESHOLD must be at least 1"),
        ("RUNBACK_SQLITE_SYNCHRONOUS", "off", "RUNBACK_SQLITE_SYNCHRONOUS must be one of"),
    ],
)
def test_a_bad_variable_is_named_as_set_in_plain_words(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    # Not a flag the command may not have, nor pydantic's "Input should be ...".
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(message)
    assert "Input should" not in str(caught.value)
