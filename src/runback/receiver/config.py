"""Per-source settings of ``runback receive``, from an optional TOML file.

A *source* is a name the user gives each sender (``POST /webhooks/<source>``): 1 to 64 of
``A-Z a-z 0-9 _ -``. Without a file, every source shares the global secrets (``--secret``,
``RUNBACK_RECEIVE_SECRETS``) and the defaults below. With one::

    [defaults]
    require_standard = false         # the default for every source
    output_paths = []                # extra JSON paths of output URLs, for every source

    [sources.runflow]
    secrets = ["whsec_..."]          # else the global secrets
    require_standard = true          # refuse requests with only Runflow-Signature

    [sources.runware]
    token = "s3cr3t"                 # Runware-style: authenticate by ?token= only (no signature)
    output_paths = ["result.files[].href"]

    [sources.mine]                   # a runback sender the reconciler may poll
    secrets = ["whsec_..."]
    sender_url = "https://runback.example.com"   # its API's base URL
    sender_key_env = "MINE_API_KEY"  # the environment variable holding its API key
    reconcile_after = 300            # seconds without a callback before polling

Rules:

- ``[defaults]`` takes ``require_standard``, ``output_paths`` and ``reconcile_after``; a
  source takes those and ``secrets``, ``token``, ``sender_url``, ``sender_key`` and
  ``sender_key_env``. Any other key is refused. A key a source sets replaces the default;
  it is not merged with it.
- A source without ``secrets`` uses the global secrets, unless it has a ``token``: a
  token-only source checks no signature (Runware signs nothing).
- ``require_standard`` asks for Standard Webhooks headers, so it only means something where
  secrets exist: a source without any reads it as ``false``, and saying ``true`` there is an
  error.
- ``output_paths`` use the path syntax of ``runback.receiver.events`` (``[]`` for every
  element of a list); paths through ``metadata`` are refused.
- ``sender_url`` (an ``http(s)`` base URL) and its API key, given as ``sender_key`` or, so
  the file holds no secret, as ``sender_key_env`` (an environment variable's name, read when
  the file is), let the reconciler poll the source's runs; one without the other is an
  error. ``reconcile_after`` (seconds, in ``[defaults]`` or a source) replaces the global
  ``RUNBACK_RECONCILE_AFTER``.
- A source with neither secrets nor token is *open* (``SourceConfig.is_open``): whether that
  is allowed (``--insecure``) is the service's decision, not this module's.

Every problem raises ``ConfigError`` with one line naming the file, the section and the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from runback.errors import ConfigError
from runback.receiver.events import parse_output_path

SOURCE_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_TOP_KEYS: Final = ("defaults", "sources")
_DEFAULT_KEYS: Final = ("require_standard", "output_paths", "reconcile_after")
_SOURCE_KEYS: Final = (
    "secrets",
    "token",
    "require_standard",
    "output_paths",
    "sender_url",
    "sender_key",
    "sender_key_env",
    "reconcile_after",
)


@dataclass(frozen=True, slots=True)
class Sender:
    """A runback API a source's callbacks come from: its base URL and an API key of it."""

    url: str
    api_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """How requests of one source are authenticated and where its output URLs are."""

    name: str
    secrets: tuple[str, ...] = ()
    require_standard: bool = False
    token: str | None = None
    output_paths: tuple[str, ...] = ()
    sender: Sender | None = None
    """Where the reconciler polls this source's runs; None: it cannot."""
    reconcile_after: float | None = None
    """Seconds without a callback before polling; None: the receiver's default."""

    @property
    def is_open(self) -> bool:
        """Neither a secret nor a token: anyone may post to this source."""
        return not self.secrets and self.token is None


@dataclass(frozen=True, slots=True)
class ReceiveConfig:
    """The global secrets, the defaults and the configured sources."""

    global_secrets: tuple[str, ...] = ()
    require_standard: bool = False
    output_paths: tuple[str, ...] = ()
    sources: tuple[SourceConfig, ...] = ()
    reconcile_after: float | None = None
    """``[defaults] reconcile_after``; None: the receiver's setting."""

    def source(self, name: str) -> SourceConfig:
        """The settings of ``name``; a name the file does not list gets the defaults."""
        for source in self.sources:
            if source.name == name:
                return source
        return SourceConfig(
            name=name,
            secrets=self.global_secrets,
            require_standard=self.require_standard and bool(self.global_secrets),
            output_paths=self.output_paths,
            reconcile_after=self.reconcile_after,
        )


def valid_source_name(name: str) -> bool:
    """Whether ``name`` may name a source (and so appear in ``/webhooks/<name>``)."""
    return SOURCE_NAME.fullmatch(name) is not None


class _Section:
    """One table of the file, read key by key; errors name the file, section and key."""

    def __init__(self, origin: str, name: str, table: object, allowed: Sequence[str]) -> None:
        self.origin, self.name = origin, name
        if not isinstance(table, dict):
            raise self.error(None, "must be a table")
        self.table: Mapping[str, object] = table
        for key in table:
            if key not in allowed:
                raise self.error(repr(key), f"unknown key (allowed: {', '.join(allowed)})")

    def error(self, key: str | None, problem: str) -> ConfigError:
        where = f"[{self.name}]" if key is None else f"[{self.name}] {key}"
        return ConfigError(f"{self.origin}: {where}: {problem}")

    def flag(self, key: str) -> bool | None:
        value = self.table.get(key)
        if value is None or isinstance(value, bool):
            return value
        raise self.error(key, f"must be true or false, not {_kind(value)}")

    def word(self, key: str) -> str | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a non-empty string, not {_kind(value)}")
        if value != value.strip():
            raise self.error(key, "has leading or trailing whitespace: a copy-paste slip?")
        return value

    def words(self, key: str) -> tuple[str, ...] | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(key, f"must be a list of strings, not {_kind(value)}")
        if not all(item and item == item.strip() for item in value):
            raise self.error(key, "has an empty string or one with surrounding whitespace")
        return tuple(value)

    def seconds(self, key: str) -> float | None:
        value = self.table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise self.error(key, f"must be a positive number of seconds, not {value!r}")
        return float(value)

    def sender(self, environ: Mapping[str, str]) -> Sender | None:
        url, key, env = (
            self.word("sender_url"),
            self.word("sender_key"),
            self.word("sender_key_env"),
        )
        if url is not None and not url.lower().startswith(("http://", "https://")):
            raise self.error("sender_url", "must be an http(s) URL (the sender's API base URL)")
        if key is not None and env is not None:
            raise self.error("sender_key", "give sender_key or sender_key_env, not both")
        if env is not None:
            key = environ.get(env) or None
            if key is None:
                raise self.error("sender_key_env", f"names {env}, which is not set or empty")
        if url is None and key is None:
            return None
        if url is None:
            raise self.error("sender_url", "is missing: a sender's key needs its URL")
        if key is None:
            raise self.error("sender_url", "needs sender_key or sender_key_env (its API key)")
        return Sender(url.rstrip("/"), key)

    def paths(self, key: str) -> tuple[str, ...] | None:
        paths = self.words(key)
        for path in paths or ():
            try:
                parse_output_path(path)
            except ConfigError as exc:
                raise self.error(key, str(exc)) from exc
        return paths


def _kind(value: object) -> str:
    """The TOML name of ``value``'s type, for messages."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    names |= {list: "an array", dict: "a table"}
    return names.get(type(value), "a date or time")


def _source(
    name: str,
    section: _Section,
    *,
    defaults: ReceiveConfig,
    global_secrets: tuple[str, ...],
    environ: Mapping[str, str],
) -> SourceConfig:
    secrets, token = section.words("secrets"), section.word("token")
    if secrets == ():
        raise section.error("secrets", "is empty: give at least one secret or leave it out")
    if secrets is None:
        secrets = () if token is not None else global_secrets
    require_standard = section.flag("require_standard")
    if require_standard and not secrets:
        problem = "needs secrets: give `secrets` here"
        raise section.error("require_standard", problem + ("" if token else " or --secret"))
    paths = section.paths("output_paths")
    reconcile_after = section.seconds("reconcile_after")
    return SourceConfig(
        name=name,
        secrets=secrets,
        require_standard=bool(secrets)
        and (defaults.require_standard if require_standard is None else require_standard),
        token=token,
        output_paths=defaults.output_paths if paths is None else paths,
        sender=section.sender(environ),
        reconcile_after=defaults.reconcile_after if reconcile_after is None else reconcile_after,
    )


def parse_receive_config(
    text: str,
    *,
    origin: str,
    global_secrets: Sequence[str],
    environ: Mapping[str, str] | None = None,
) -> ReceiveConfig:
    """The settings in the TOML ``text``; ``origin`` names it in errors; ``environ``, where
    ``sender_key_env`` names are looked up (none given: none is set)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from exc
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{origin}: unknown key {key!r} (allowed: {', '.join(_TOP_KEYS)})")
    secrets = tuple(global_secrets)
    section = _Section(origin, "defaults", data.get("defaults", {}), _DEFAULT_KEYS)
    defaults = ReceiveConfig(
        global_secrets=secrets,
        require_standard=bool(section.flag("require_standard")),
        output_paths=section.paths("output_paths") or (),
        reconcile_after=section.seconds("reconcile_after"),
    )
    tables = data.get("sources", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{origin}: [sources]: must be a table of [sources.<name>] tables")
    sources = []
    for name, table in tables.items():
        if not valid_source_name(name):
            problem = "is not a source name: 1 to 64 of A-Z a-z 0-9 _ -"
            raise ConfigError(f"{origin}: [sources] {name!r}: {problem}")
        section = _Section(origin, f"sources.{name}", table, _SOURCE_KEYS)
        sources.append(
            _source(name, section, defaults=defaults, global_secrets=secrets, environ=environ or {})
        )
    return ReceiveConfig(
        global_secrets=secrets,
        require_standard=defaults.require_standard,
        output_paths=defaults.output_paths,
        sources=tuple(sources),
        reconcile_after=defaults.reconcile_after,
    )


def load_receive_config(
    path: Path | None,
    *,
    global_secrets: Sequence[str],
    environ: Mapping[str, str] | None = None,
) -> ReceiveConfig:
    """The settings in the TOML file at ``path``; with no path, the defaults."""
    if path is None:
        return ReceiveConfig(global_secrets=tuple(global_secrets))
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file: give the path of an existing file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    return parse_receive_config(
        text, origin=str(path), global_secrets=global_secrets, environ=environ
    )
