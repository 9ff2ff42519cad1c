"""The settings each part of a process takes, in small frozen groups.

``runback.settings.Settings`` reads the environment and the flags once, at the edge, and
builds a ``Config``: one group per concern. Every component takes its own group and nothing
else, so none of them knows where a value came from, and a test builds only the group it
needs, with the defaults documented in ``docs/configuration.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal

from runback.core.destinations import BreakerPolicy
from runback.core.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from runback.core.sealing import MasterKeys
from runback.core.thin import DEFAULT_MAX_CALLBACK_BYTES, MIN_MAX_CALLBACK_BYTES
from runback.core.urlpolicy import UrlPolicy
from runback.errors import ConfigError

SqliteSync = Literal["normal", "full"]


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where the client commands (``runback runs``, ``listen``...) reach runback's API."""

    url: str
    api_key: str | None = field(default=None, repr=False)
    """None: the command says where to get one, before any request."""


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """Where the store lives and how it is opened."""

    url: str
    schema: str | None = None
    """PostgreSQL: the schema runback's tables live in (default: the role's search path)."""
    pool_size: int = 20
    auto_migrate: bool = True
    sqlite_synchronous: SqliteSync = "normal"
    master_keys: MasterKeys | None = field(default=None, repr=False)
    """Keys sealing callback secrets at rest; None stores them plain."""

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """How callbacks go out: the retry ladder new deliveries freeze, the breaker, the limits."""

    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    url_policy: UrlPolicy = field(default_factory=UrlPolicy)
    attempt_timeout: float = 10.0
    test_timeout: float = 5.0
    """Seconds a test ping (``POST /v1/callback-tests``) waits for its answer."""
    max_in_flight: int = 256
    per_destination: int = 16
    operations_url: str | None = None
    """Where ``delivery.exhausted`` and the destination events go, if anywhere."""
    lease_seconds: float = 60.0
    poll_interval: float = 1.0
    callback_max_bytes: int = DEFAULT_MAX_CALLBACK_BYTES
    """A callback body longer than this is sent thin (``runback.core.thin``)."""

    def __post_init__(self) -> None:
        if self.callback_max_bytes < MIN_MAX_CALLBACK_BYTES:
            raise ConfigError(
                f"callback_max_bytes must be at least {MIN_MAX_CALLBACK_BYTES} bytes "
                f"(4 KiB), not {self.callback_max_bytes}"
            )


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    """How runs execute and what their outputs may be."""

    max_concurrent_runs: int = 64
    max_executions: int = 2
    model_timeout: float = 600.0
    """Timeout of models that set none."""
    threads: int = 8
    unserved_after: float = 3600.0
    """Seconds a queued run waits for a live worker serving its model, then fails."""
    max_output_bytes: int = 1024**3
    output_url_ttl: float | None = None
    """Seconds output URLs stay valid; None: the longer of 24 h and the retry window."""
    lease_seconds: float = 60.0
    poll_interval: float = 1.0
    event_interval: float = 0.5
    """Seconds between two progress events of one run, at least (the latest state wins)."""
    event_log_chars: int = 64 * 1024
    """How much of a run's log its progress events carry: the last so many characters."""


@dataclass(frozen=True, slots=True)
class BlobConfig:
    """Where files go: an S3-compatible bucket, or a directory."""

    directory: Path
    s3_bucket: str | None = None
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = field(default=None, repr=False)
    s3_presign: bool = False


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The HTTP side of a process and the data directory it runs in."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    """The base URL clients reach the API at; None: the address served on."""
    files_shared: bool = False
    max_body_bytes: int = 5 * 1024 * 1024
    access_log: bool = False
    shutdown_grace: float = 30.0
    dashboard_session_lifetime: timedelta = timedelta(hours=8)


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """How long ended work is kept, and how much one pruning transaction removes."""

    keep: timedelta | None = timedelta(days=30)
    """None keeps everything."""
    batch: int = 500


@dataclass(frozen=True, slots=True)
class ReceivingConfig:
    """``runback receive``: its limits, and how it copies output files."""

    url_policy: UrlPolicy = field(default_factory=UrlPolicy)
    max_body_bytes: int = 5 * 1024 * 1024
    max_copy_bytes: int = 1024**3
    copy_concurrency: int = 16
    copy_timeout: float = 300.0
    url_ttl: timedelta = timedelta(hours=24)
    """How long an output URL is taken to live when neither the payload nor the URL says."""
    insecure: bool = False
    poll_interval: float = 1.0
    reconcile_after: timedelta = timedelta(minutes=10)
    """How long an expected run may go without its callback before its sender is polled."""
    reconcile_give_up: timedelta = timedelta(days=7)
    """How long past its deadline an expected run is polled before giving up."""


@dataclass(frozen=True, slots=True)
class Config:
    """Every group, as the edge built them for one process."""

    server: ServerConfig
    database: DatabaseConfig
    blobs: BlobConfig
    delivery: DeliveryConfig = DeliveryConfig()
    execution: ExecutionConfig = ExecutionConfig()
    retention: RetentionConfig = RetentionConfig()
    receiving: ReceivingConfig = ReceivingConfig()
