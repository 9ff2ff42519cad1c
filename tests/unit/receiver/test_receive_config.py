"""Per-source settings of ``runback receive`` from its optional TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from runback.errors import ConfigError
from runback.receiver.config import (
    ReceiveConfig,
    Sender,
    SourceConfig,
    load_receive_config,
    parse_receive_config,
    valid_source_name,
)

GLOBAL = ("whsec_global",)

GOOD = """
[defaults]
require_standard = false
output_paths = ["data[].url"]

[sources.runflow]
secrets = ["whsec_one", "whsec_two"]
require_standard = true

[sources.runware]
token = "s3cr3t"
output_paths = ["result.files[].href"]

[sources.plain]
"""


def write(tmp_path: Path, text: str, name: str = "receive.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, *, secrets: tuple[str, ...] = GLOBAL) -> ReceiveConfig:
    return load_receive_config(write(tmp_path, text), global_secrets=secrets)


def test_a_good_file(tmp_path: Path) -> None:
    config = load(tmp_path, GOOD)

    assert config.source("runflow") == SourceConfig(
        name="runflow",
        secrets=("whsec_one", "whsec_two"),
        require_standard=True,
        token=None,
        output_paths=("data[].url",),
    )
    assert config.source("runware") == SourceConfig(
        name="runware",
        secrets=(),
        require_standard=False,
        token="s3cr3t",
        output_paths=("result.files[].href",),
    )
    assert config.source("plain") == SourceConfig(
        name="plain", secrets=GLOBAL, output_paths=("data[].url",)
    )


def test_an_unlisted_source_gets_the_defaults_and_the_global_secrets(tmp_path: Path) -> None:
    config = load(tmp_path, '[defaults]\nrequire_standard = true\noutput_paths = ["a[].b"]\n')

    assert config.source("other") == SourceConfig(
        name="other", secrets=GLOBAL, require_standard=True, output_paths=("a[].b",)
    )


def test_no_file_gives_the_defaults() -> None:
    config = load_receive_config(None, global_secrets=list(GLOBAL))

    assert config == ReceiveConfig(global_secrets=GLOBAL)
    assert config.source("anything") == SourceConfig(name="anything", secrets=GLOBAL)


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, "") == ReceiveConfig(global_secrets=GLOBAL)


def test_a_source_with_a_token_does_not_inherit_the_global_secrets(tmp_path: Path) -> None:
    source = load(tmp_path, '[sources.runware]\ntoken = "t"\n').source("runware")

    assert (source.secrets, source.token, source.is_open) == ((), "t", False)


def test_a_source_with_secrets_and_a_token_keeps_both(tmp_path: Path) -> None:
    source = load(tmp_path, '[sources.s]\ntoken = "t"\nsecrets = ["k"]\n').source("s")

    assert (source.secrets, source.token) == (("k",), "t")


def test_a_source_key_replaces_the_default(tmp_path: Path) -> None:
    text = '[defaults]\noutput_paths = ["a"]\n[sources.s]\noutput_paths = []\n'

    assert load(tmp_path, text).source("s").output_paths == ()


def test_require_standard_by_default_skips_a_token_only_source(tmp_path: Path) -> None:
    text = '[defaults]\nrequire_standard = true\n[sources.runware]\ntoken = "t"\n'

    config = load(tmp_path, text)

    assert config.source("runware").require_standard is False
    assert config.source("other").require_standard is True


@pytest.mark.parametrize(
    ("secrets", "token", "is_open"),
    [
        ((), None, True),  # nothing at all: the service decides (--insecure)
        (("k",), None, False),  # secrets
        ((), "t", False),  # a token
    ],
)
def test_is_open(secrets: tuple[str, ...], token: str | None, is_open: bool) -> None:
    assert SourceConfig(name="s", secrets=secrets, token=token).is_open is is_open


def test_without_global_secrets_an_unlisted_source_is_open() -> None:
    source = load_receive_config(None, global_secrets=()).source("any")

    assert source.is_open
    assert source.require_standard is False


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("surprise = 1", "'surprise'"),  # an unknown top-level key
        ("[default]", "'default'"),  # a misspelt section
        ("defaults = 1", "[defaults]"),  # defaults not a table
        ("[defaults]\nsecrets = ['k']", "[defaults] 'secrets'"),  # secrets are per source
        ("[defaults]\ntoken = 't'", "[defaults] 'token'"),  # tokens are per source
        ("[defaults]\nrequire_standard = 1", "[defaults] require_standard"),  # not a boolean
        ("[defaults]\noutput_paths = 'a.b'", "[defaults] output_paths"),  # not a list
        ("sources = 1", "[sources]"),  # sources not a table
        ("[sources]\nrunflow = 1", "[sources.runflow]"),  # a source not a table
        ('[sources."bad name"]', "'bad name'"),  # a space in a source name
        (f"[sources.{'s' * 65}]", "'sss"),  # a source name over 64 characters
        ('[sources."é"]', "'é'"),  # a non-ASCII source name
        ("[sources.s]\nsecret = ['k']", "[sources.s] 'secret'"),  # a misspelt key
        ("[sources.s]\nsecrets = 'k'", "[sources.s] secrets"),  # a string, not a list
        ("[sources.s]\nsecrets = [1]", "[sources.s] secrets"),  # not strings
        ("[sources.s]\nsecrets = []", "[sources.s] secrets"),  # empty
        ("[sources.s]\nsecrets = ['']", "[sources.s] secrets"),  # an empty secret
        ("[sources.s]\nsecrets = ['k ']", "[sources.s] secrets"),  # trailing whitespace
        ("[sources.s]\ntoken = 1", "[sources.s] token"),  # not a string
        ("[sources.s]\ntoken = ''", "[sources.s] token"),  # empty
        ("[sources.s]\ntoken = ' t'", "[sources.s] token"),  # leading whitespace
        ("[sources.s]\nrequire_standard = 'yes'", "[sources.s] require_standard"),  # a string
        ("[sources.s]\noutput_paths = [{a = 1}]", "[sources.s] output_paths"),  # tables
        ("[sources.s]\noutput_paths = ['a..b']", "[sources.s] output_paths"),  # bad syntax
        ("[sources.s]\noutput_paths = ['metadata.url']", "[sources.s] output_paths"),  # metadata
        ("[sources.s]\ntoken = 't'\nrequire_standard = true", "[sources.s] require_standard"),
        ("[sources.s\n", "not valid TOML"),  # a syntax error
    ],
)
def test_bad_settings_raise_one_line_naming_file_section_and_key(
    tmp_path: Path, text: str, names: str
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as raised:
        load_receive_config(path, global_secrets=GLOBAL)

    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert names in message
    assert "\n" not in message


def test_require_standard_without_any_secret_says_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"require_standard: needs secrets.*--secret"):
        load(tmp_path, "[sources.s]\nrequire_standard = true\n", secrets=())


def test_require_standard_with_only_global_secrets_is_fine(tmp_path: Path) -> None:
    source = load(tmp_path, "[sources.s]\nrequire_standard = true\n").source("s")

    assert (source.secrets, source.require_standard) == (GLOBAL, True)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"

    with pytest.raises(ConfigError, match="no such file") as raised:
        load_receive_config(path, global_secrets=GLOBAL)

    assert str(raised.value).startswith(str(path))


def test_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_receive_config(tmp_path, global_secrets=GLOBAL)


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "receive.toml"
    path.write_bytes(b"[sources.s]\ntoken = '\xff'\n")

    with pytest.raises(ConfigError, match="not UTF-8"):
        load_receive_config(path, global_secrets=GLOBAL)


def test_parse_names_its_origin_in_errors() -> None:
    with pytest.raises(ConfigError, match=r"^RUNBACK_RECEIVE_CONFIG: unknown key 'x'"):
        parse_receive_config("x = 1", origin="RUNBACK_RECEIVE_CONFIG", global_secrets=())


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("runflow", True),  # the ordinary case
        ("Run-ware_2", True),  # every allowed character class
        ("s" * 64, True),  # the longest
        ("s" * 65, False),  # too long
        ("", False),  # empty
        ("a/b", False),  # a slash would leave /webhooks/<source>
        ("a.b", False),  # a dot
        ("é", False),  # not ASCII
        ("a\n", False),  # a trailing newline, which $ would have let through
    ],
)
def test_source_names(name: str, valid: bool) -> None:
    assert valid_source_name(name) is valid


# --- the sender the reconciler polls ------------------------------------------------------

SENDERS = """
[defaults]
reconcile_after = 120

[sources.from_env]
sender_url = "http://127.0.0.1:8000/"
sender_key_env = "MINE_KEY"

[sources.inline]
sender_url = "https://runback.example.com"
sender_key = "rb_inline"
reconcile_after = 5.5
"""


def test_a_sender_s_key_comes_from_the_variable_the_file_names() -> None:
    config = parse_receive_config(
        SENDERS, origin="r.toml", global_secrets=GLOBAL, environ={"MINE_KEY": "rb_from_env"}
    )

    from_env, inline = config.source("from_env"), config.source("inline")
    assert from_env.sender == Sender("http://127.0.0.1:8000", "rb_from_env")
    assert inline.sender == Sender("https://runback.example.com", "rb_inline")
    assert (from_env.reconcile_after, inline.reconcile_after) == (120.0, 5.5)
    assert config.source("unlisted").reconcile_after == 120.0
    assert config.source("unlisted").sender is None
    assert "rb_from_env" not in repr(from_env)  # the key stays out of logs


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ('sender_url = "http://x"', "sender_url", "needs sender_key"),
        ('sender_key = "rb_x"', "sender_url", "is missing"),
        ('sender_url = "ftp://x"\nsender_key = "k"', "sender_url", "http(s) URL"),
        ('sender_url = "http://x"\nsender_key_env = "UNSET"', "sender_key_env", "UNSET"),
        (
            'sender_url = "http://x"\nsender_key = "k"\nsender_key_env = "MINE_KEY"',
            "sender_key",
            "not both",
        ),
        ("reconcile_after = 0", "reconcile_after", "positive number"),
        ("reconcile_after = true", "reconcile_after", "positive number"),
        ('reconcile_after = "10m"', "reconcile_after", "positive number"),
    ],
)
def test_a_bad_sender_is_one_line_naming_its_key(table: str, key: str, problem: str) -> None:
    text = f"[sources.mine]\n{table}\n"

    with pytest.raises(ConfigError) as raised:
        parse_receive_config(
            text, origin="r.toml", global_secrets=GLOBAL, environ={"MINE_KEY": "rb_x"}
        )

    assert str(raised.value).startswith(f"r.toml: [sources.mine] {key}: ")
    assert problem in str(raised.value)
