"""Settings: defaults, environment variables, flags over variables, one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from runback.core.retry import DEFAULT_RETRY_POLICY, RetryPolicy
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


def test_the_retry_ladder_is_read_in_any_unit_and_reaches_the_delivery_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNBACK_RETRY_DELAYS", "250ms, 1, 5m,2h,1d")
    monkeypatch.setenv("RUNBACK_RETRY_JITTER", "0.1")

    retry = load_settings().config().delivery.retry

    assert retry == RetryPolicy(delays=(0.25, 1.0, 300.0, 7200.0, 86400.0), jitter=0.1)


def test_the_default_ladder_is_the_contract_s() -> None:
    assert load_settings().config().delivery.retry == DEFAULT_RETRY_POLICY


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1s,soon", "RUNBACK_RETRY_DELAYS 'soon' is not a duration"),
        ("8d", "RUNBACK_RETRY_DELAYS must list delays between 0 and 7 days"),
        (",".join(["1"] * 51), "RUNBACK_RETRY_DELAYS must list at most 50 delays"),
    ],
)
def test_a_bad_retry_ladder_is_named(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("RUNBACK_RETRY_DELAYS", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(message)


def test_retention_must_outlast_the_configured_ladder(monkeypatch: pytest.MonkeyPatch) -> None:
    # 10 days of waits, 20 % jitter and a 10 % margin: 13.2 days.
    monkeypatch.setenv("RUNBACK_RETRY_DELAYS", "5d,5d")
    monkeypatch.setenv("RUNBACK_RETENTION_DAYS", "10")
    with pytest.raises(ConfigError, match=r"^RUNBACK_RETENTION_DAYS .*more than 13\.20 days"):
        load_settings()
    monkeypatch.setenv("RUNBACK_RETENTION_DAYS", "14")
    assert load_settings().retention_days == 14


def test_a_process_s_groups_come_from_one_read(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, receive_data_dir=tmp_path / "r", port=9000)

    serving, receiving = settings.config(), settings.receiving_config()

    assert serving.database.url == f"sqlite+aiosqlite:///{tmp_path}/runback.db"
    assert receiving.database.url == f"sqlite+aiosqlite:///{tmp_path}/r/runback.db"
    assert (serving.server.port, receiving.server.port) == (9000, 8001)
    assert receiving.blobs.directory == tmp_path / "r" / "files"
