"""``Settings``: every ``RUNBACK_*`` variable and CLI flag, read once at the edge.

Flags win over variables, variables over defaults. Nothing below the entry point reads the
environment, nor sees this class: ``config()`` and ``receiving_config()`` split it into the
frozen groups of ``runback.config``, and each component takes its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from runback.config import (
    BlobConfig,
    ClientConfig,
    Config,
    DatabaseConfig,
    DeliveryConfig,
    ExecutionConfig,
    ReceivingConfig,
    RetentionConfig,
    ServerConfig,
)
from runback.core.destinations import BreakerPolicy
from runback.core.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from runback.core.sealing import MasterKeys
from runback.core.thin import DEFAULT_MAX_CALLBACK_BYTES, MIN_MAX_CALLBACK_BYTES
from runback.core.urlpolicy import UrlPolicy
from runback.errors import ConfigError
from runback.wording import problem

LEASE_MARGIN_SECONDS = 5.0
MAX_RETRY_DELAYS: Final = 50
MAX_RETRY_DELAY: Final = 7 * 24 * 3600.0
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def _seconds(text: str) -> float:
    """``250ms``, ``1.5``, ``5m``, ``2h``, ``1d``: seconds (a bare number is seconds)."""
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(f"{text.strip()!r} is not a duration such as 250ms, 5, 5m, 2h or 1d")
    return float(found[1]) * _UNITS[found[2] or "s"]


class Settings(BaseSettings):
    """Every setting of runback, with its default (``docs/configuration.md`` says why)."""

    model_config = SettingsConfigDict(env_prefix="RUNBACK_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path("runback-data")
    database_url: str | None = None
    """Defaults to ``runback.db`` inside the data directory."""
    database_schema: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """PostgreSQL: the schema runback's tables live in (default: the role's search path)."""
    database_pool_size: int = Field(default=20, ge=1, le=1000)
    """PostgreSQL connections per process (and as many more under bursts)."""
    auto_migrate: bool = True
    """Migrate a new or older database on start; off for operators who migrate in a deploy
    step (``runback migrate``)."""
    shutdown_grace: float = Field(default=30.0, ge=0)
    """Seconds work under way gets to finish on SIGTERM before it is handed back."""
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    """``normal`` survives any crash of the process; ``full`` also a power loss, slower."""

    callback_allow: Annotated[tuple[str, ...], NoDecode] = ()
    """CIDRs and host names that outbound URLs may reach although they are internal."""

    attempt_timeout: float = Field(default=10.0, gt=0, le=300)
    callback_test_timeout: float = Field(default=5.0, gt=0, le=30)
    """Seconds ``POST /v1/callback-tests`` waits for the receiver: it answers within the
    request, so it is bounded apart from ``attempt_timeout``."""
    retry_delays: Annotated[tuple[float, ...], NoDecode] = DEFAULT_RETRY_POLICY.delays
    """The waits between a callback's attempts, comma-separated (``250ms,1s,5m,2h``); each
    new delivery keeps the ladder it started with."""
    retry_jitter: float = Field(default=DEFAULT_RETRY_POLICY.jitter, ge=0, le=1)
    """Each wait is lengthened by up to this fraction, at random, so retries spread out."""
    max_in_flight_per_destination: int = Field(default=16, ge=1, le=10_000)
    """Attempts under way to one ``host:port`` at once: a slow receiver holds no more."""
    breaker_threshold: int = Field(default=5, ge=1, le=1000)
    """Failures in a row that, with ``breaker_window_seconds`` without a success, open a
    destination's circuit."""
    breaker_window_seconds: float = Field(default=30.0, ge=0)
    """How long a destination must have gone without a success before its circuit opens:
    longer than the fast rungs of the retry ladder, so a receiver failing a few callbacks
    during a deploy keeps every delivery on its ladder."""
    breaker_open_seconds: float = Field(default=30.0, gt=0)
    """How long a circuit first stays open; it doubles (to 10 min) each time a probe fails."""
    destination_disable_after: float = Field(default=24 * 3600.0, gt=0)
    """Seconds of failing without a break after which a destination is disabled."""
    operations_callback_url: str | None = None
    """Where to send ``delivery.exhausted``, ``destination.disabled`` and
    ``destination.recovered``, signed like every callback."""
    max_in_flight_deliveries: int = Field(default=256, ge=1, le=100_000)
    callback_max_bytes: int = Field(
        default=DEFAULT_MAX_CALLBACK_BYTES, ge=MIN_MAX_CALLBACK_BYTES, le=2**40
    )
    """A callback body longer than this is sent thin: ``output`` null and an ``output_url``
    serving the full bytes (at least 4 KiB)."""
    max_concurrent_runs: int = Field(default=64, ge=1, le=100_000)
    unserved_run_timeout: float = Field(default=3600.0, gt=0)
    """Seconds a queued run may wait when no live worker serves its model (a worker pool is
    down, or no deployment has it) before it fails with ``model_unavailable``."""
    run_max_executions: int = Field(default=2, ge=1, le=100)
    """How often a run may start: a run interrupted by a crash runs again while it may."""
    model_timeout: float = Field(default=600.0, gt=0)
    """Timeout of models that set none."""
    poll_interval: float = Field(default=1.0, gt=0, le=60)
    """The safety-net poll; work is normally picked up at once through in-process wake-ups."""
    lease_seconds: float = Field(default=60.0, gt=0)
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    public_url: str | None = None
    """The base URL receivers reach the API at; output file URLs start with it. ``serve``
    defaults to the address it serves on; ``api`` and ``worker`` require it."""
    dashboard_session_lifetime: float = Field(default=8 * 3600.0, gt=0)
    """Seconds a dashboard login lasts (``/dashboard``); then the API key is asked again."""
    files_shared: bool = False
    """Every ``api`` and ``worker`` process sees the same ``<data dir>/files`` (one host,
    or one shared mount): without it, or ``RUNBACK_S3_BUCKET``, they refuse to start."""
    output_url_ttl: float | None = Field(default=None, gt=0)
    """Seconds output URLs stay valid; default: the longer of 24 h and the retry window."""
    max_output_bytes: int = Field(default=1024**3, ge=1)
    event_interval: float = Field(default=0.5, ge=0, le=3600)
    """Seconds between two progress events (``run.logs``, ``run.output``) of one run, at
    least: those in between are merged, the latest state wins. Terminal events never wait."""
    event_log_chars: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    """How much of a run's log each progress event carries: its last characters."""
    model_threads: int = Field(default=8, ge=1, le=1024)
    """Threads for plain ``def`` models."""
    models: Annotated[tuple[str, ...], NoDecode] = ()
    """Modules whose models to serve besides the built-in and entry-point ones."""
    s3_bucket: str | None = None
    """Keep output files in this S3-compatible bucket instead of the data directory."""
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_presign: bool = False
    """Use the bucket's own presigned URLs instead of runback's ``/files`` URLs."""
    receive_port: int = Field(default=8001, ge=0, le=65535)
    """``runback receive``'s port (``--port`` there)."""
    receive_data_dir: Path = Path("runback-receive-data")
    """``runback receive``'s own data directory and database (``--data-dir`` there)."""
    receive_secrets: Annotated[tuple[str, ...], NoDecode] = ()
    """Secrets callbacks are verified with, comma-separated; several during a rotation."""
    receive_config: Path | None = None
    """A TOML file of per-source settings (secrets, token, output paths)."""
    receive_handlers: Annotated[tuple[str, ...], NoDecode] = ()
    """Modules whose handlers run for received events."""
    receive_insecure: bool = False
    """Accept unsigned callbacks from sources without secret or token (development only)."""
    receive_max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    receive_max_copy_bytes: int = Field(default=1024**3, ge=1)
    receive_copy_concurrency: int = Field(default=16, ge=1, le=10_000)
    receive_copy_timeout: float = Field(default=300.0, gt=0)
    """Seconds one copy of an output file may take."""
    receive_url_ttl: float = Field(default=24 * 3600.0, gt=0)
    """How long an output URL is taken to live when neither the payload nor the URL says."""
    receive_reconcile_after: float = Field(default=600.0, gt=0)
    """Seconds an expected run may go without its callback before the sender is polled
    (a source's ``reconcile_after`` in the receive config replaces it)."""
    receive_reconcile_give_up: float = Field(default=7 * 24 * 3600.0, gt=0)
    """Seconds past an expected run's deadline after which polling it stops (``gave_up``)."""
    master_keys: Annotated[tuple[str, ...], NoDecode] = Field(default=(), repr=False)
    """Keys sealing callback secrets at rest, ``<id>:<base64 of 32 bytes>``, comma-separated:
    the first seals, the others only open (a rotation). Empty: secrets are stored plain."""
    retention_days: float = Field(default=30.0, ge=0)
    """Days ended runs, their files and deliveries, and inbox events are kept; 0 keeps all."""
    prune_batch: int = Field(default=500, ge=1, le=100_000)
    """Rows pruned per transaction."""
    url: str = "http://127.0.0.1:8000"
    """The runback API the client commands (``runs``, ``deliveries``, ``secrets``,
    ``listen``) talk to."""
    api_key: str | None = Field(default=None, repr=False)
    """The API key the client commands act with (from ``runback keys create``)."""
    access_log: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] | None = None
    """One JSON object per line, or text; default: text on a terminal, JSON elsewhere."""
    otel: bool = False
    """Export OpenTelemetry traces (the ``otel`` extra; the exporter is set by the standard
    ``OTEL_*`` variables)."""

    @field_validator(
        "callback_allow",
        "models",
        "receive_secrets",
        "receive_handlers",
        "master_keys",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("url")
    @classmethod
    def _an_api_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL, such as http://127.0.0.1:8000")
        return value

    @field_validator("retry_delays", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(_seconds(part) for part in value.split(",") if part.strip())
        return value

    @field_validator("retry_delays")
    @classmethod
    def _ladder_bounded(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) > MAX_RETRY_DELAYS:
            raise ValueError(f"must list at most {MAX_RETRY_DELAYS} delays")
        if any(not 0 <= delay <= MAX_RETRY_DELAY for delay in value):
            raise ValueError("must list delays between 0 and 7 days")
        return value

    @field_validator("master_keys")
    @classmethod
    def _master_keys_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if value:
            _checked(MasterKeys.parse, value)
        return value

    @field_validator("callback_allow")
    @classmethod
    def _allow_list_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _checked(UrlPolicy.from_allow_list, value)
        return value

    @field_validator("retention_days")
    @classmethod
    def _retention_outlasts_retries(cls, value: float, info: ValidationInfo) -> float:
        # Keep a run's deliveries for their whole retry window and some: runs are never
        # pruned mid-delivery anyway, but their history should outlive the last retry.
        # (The retry fields come first, so they are checked and known here.)
        delays = info.data.get("retry_delays", DEFAULT_RETRY_POLICY.delays)
        jitter = info.data.get("retry_jitter", DEFAULT_RETRY_POLICY.jitter)
        shortest = RetryPolicy(delays=delays, jitter=jitter).window * 1.1 / 86400
        if 0 < value <= shortest:
            raise ValueError(f"must be 0 (keep everything) or more than {shortest:.2f} days")
        return value

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> Settings:
        # A lease shorter than an attempt lets a slow delivery be claimed and sent twice.
        if self.lease_seconds < self.attempt_timeout + LEASE_MARGIN_SECONDS:
            raise ValueError(
                f"lease_seconds must be at least attempt_timeout + {LEASE_MARGIN_SECONDS:g} s"
            )
        return self

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to the SQLite file in the data directory."""
        return self._database_url(self.data_dir)

    def _database_url(self, data_dir: Path) -> str:
        # Imported here: the client commands read settings without loading the store.
        from runback.store import DATABASE_FILE, sqlite_url

        return self.database_url or sqlite_url(data_dir / DATABASE_FILE)

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(delays=self.retry_delays, jitter=self.retry_jitter)

    def config(self) -> Config:
        """The groups of a serving process (``serve``, ``api``, ``worker``)."""
        return Config(
            server=ServerConfig(
                data_dir=self.data_dir,
                host=self.host,
                port=self.port,
                public_url=self.public_url,
                files_shared=self.files_shared,
                max_body_bytes=self.max_body_bytes,
                access_log=self.access_log,
                shutdown_grace=self.shutdown_grace,
                dashboard_session_lifetime=timedelta(seconds=self.dashboard_session_lifetime),
            ),
            database=self._database(self.data_dir),
            blobs=self._blobs(self.data_dir),
            delivery=DeliveryConfig(
                retry=self.retry_policy,
                breaker=BreakerPolicy(
                    threshold=self.breaker_threshold,
                    window=timedelta(seconds=self.breaker_window_seconds),
                    first_open=timedelta(seconds=self.breaker_open_seconds),
                    disable_after=timedelta(seconds=self.destination_disable_after),
                ),
                url_policy=self._url_policy(),
                attempt_timeout=self.attempt_timeout,
                test_timeout=self.callback_test_timeout,
                max_in_flight=self.max_in_flight_deliveries,
                per_destination=self.max_in_flight_per_destination,
                operations_url=self.operations_callback_url,
                lease_seconds=self.lease_seconds,
                poll_interval=self.poll_interval,
                callback_max_bytes=self.callback_max_bytes,
            ),
            execution=ExecutionConfig(
                max_concurrent_runs=self.max_concurrent_runs,
                max_executions=self.run_max_executions,
                model_timeout=self.model_timeout,
                threads=self.model_threads,
                unserved_after=self.unserved_run_timeout,
                max_output_bytes=self.max_output_bytes,
                output_url_ttl=self.output_url_ttl,
                lease_seconds=self.lease_seconds,
                poll_interval=self.poll_interval,
                event_interval=self.event_interval,
                event_log_chars=self.event_log_chars,
            ),
            retention=self._retention(),
        )

    def receiving_config(self) -> Config:
        """The groups of ``runback receive``: its own port, data directory and database."""
        return Config(
            server=ServerConfig(
                data_dir=self.receive_data_dir,
                host=self.host,
                port=self.receive_port,
                access_log=self.access_log,
                shutdown_grace=self.shutdown_grace,
            ),
            database=self._database(self.receive_data_dir),
            blobs=self._blobs(self.receive_data_dir),
            receiving=ReceivingConfig(
                url_policy=self._url_policy(),
                max_body_bytes=self.receive_max_body_bytes,
                max_copy_bytes=self.receive_max_copy_bytes,
                copy_concurrency=self.receive_copy_concurrency,
                copy_timeout=self.receive_copy_timeout,
                url_ttl=timedelta(seconds=self.receive_url_ttl),
                insecure=self.receive_insecure,
                poll_interval=self.poll_interval,
                reconcile_after=timedelta(seconds=self.receive_reconcile_after),
                reconcile_give_up=timedelta(seconds=self.receive_reconcile_give_up),
            ),
            retention=self._retention(),
        )

    def client_config(self) -> ClientConfig:
        """The group of the client commands: which API, with which key."""
        return ClientConfig(url=self.url.rstrip("/"), api_key=self.api_key)

    def _database(self, data_dir: Path) -> DatabaseConfig:
        return DatabaseConfig(
            url=self._database_url(data_dir),
            schema=self.database_schema,
            pool_size=self.database_pool_size,
            auto_migrate=self.auto_migrate,
            sqlite_synchronous=self.sqlite_synchronous,
            master_keys=MasterKeys.parse(self.master_keys) if self.master_keys else None,
        )

    def _blobs(self, data_dir: Path) -> BlobConfig:
        return BlobConfig(
            directory=data_dir / "files",
            s3_bucket=self.s3_bucket,
            s3_endpoint=self.s3_endpoint,
            s3_region=self.s3_region,
            s3_access_key_id=self.s3_access_key_id,
            s3_secret_access_key=self.s3_secret_access_key,
            s3_presign=self.s3_presign,
        )

    def _url_policy(self) -> UrlPolicy:
        return UrlPolicy.from_allow_list(self.callback_allow)

    def _retention(self) -> RetentionConfig:
        keep = timedelta(days=self.retention_days) if self.retention_days > 0 else None
        return RetentionConfig(keep=keep, batch=self.prune_batch)


def _checked(parse: Callable[[tuple[str, ...]], object], value: tuple[str, ...]) -> None:
    """Run ``parse`` for its ``ConfigError``, said as pydantic wants a bad value said."""
    try:
        parse(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the given (non-None) overrides from flags."""
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        if not name:  # a rule across settings: its message names them
            raise ConfigError(problem(first)) from None
        # Name where the value came from: a flag this command has, else the variable.
        where = f"--{name.replace('_', '-')}" if name in given else f"RUNBACK_{name.upper()}"
        raise ConfigError(f"{where} {problem(first)}") from None
