"""The tables, as SQLAlchemy Core objects for the queries.

The migrations in ``migrations/versions`` create them; this module mirrors the latest state.
Every claimable table has lease columns (``claimed_by``, ``lease_until``) so that several
workers can share it once the PostgreSQL backend arrives; every table carries
``organization_id`` so that no query can forget whose rows it reads.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)

from runback.store.types import UtcDateTime

metadata = MetaData()

ORDERED_IN_FLIGHT = "ordered AND status IN ('pending', 'delivering')"
"""The partial index of ordered deliveries in flight, and the condition that uses it."""

organizations = Table(
    "organizations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("key_prefix", Text, nullable=False),
    Column("label", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
    Column("last_used_at", UtcDateTime),
)

# Counters that processes compare with what they cached: ``api_keys`` grows with every
# revocation, so a cached key is good while the counter has not moved.
revisions = Table(
    "revisions",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# One row per live executor (renewed a few times per lease): the models it serves, as a
# JSON array. A run whose model no live executor serves waits, then fails.
workers = Table(
    "workers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("models", Text, nullable=False),
    Column("seen_at", UtcDateTime, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("api_key_id", Uuid, ForeignKey("api_keys.id"), primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    # The key's default organization is its first membership.
    Column("position", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("model", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("input", Text, nullable=False),
    Column("output", Text),
    Column("metadata", Text),
    Column("client_ref", Text),
    Column("callback_url", Text),
    Column("idempotency_key", Text),
    Column("request_hash", Text),
    Column("batch_id", Uuid),
    Column("failure_code", Text),
    Column("failure_message", Text),
    Column("execution_count", Integer, nullable=False, server_default=text("0")),
    Column("output_url_ttl", Integer),
    Column("cancel_requested_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("completed_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("claimed_by", Text),
    Column("lease_until", UtcDateTime),
    Column("sequence_index", Integer),
    # The events it asked for, comma-separated (None: its end only), and its latest's number.
    Column("events", Text),
    Column("event_sequence", Integer, nullable=False, server_default=text("0")),
    # The W3C trace context of its submission (traced deployments only).
    Column("traceparent", Text),
    Index("ix_runs_org_created", "organization_id", "created_at"),
    Index(
        "ix_runs_batch",
        "batch_id",
        "sequence_index",
        sqlite_where=text("batch_id IS NOT NULL"),
        postgresql_where=text("batch_id IS NOT NULL"),
    ),
    Index("ix_runs_completed", "completed_at"),
    Index(
        "ix_runs_queued",
        "created_at",
        sqlite_where=text("status = 'queued'"),
        postgresql_where=text("status = 'queued'"),
    ),
    Index(
        "ix_runs_claimed_lease",
        "lease_until",
        sqlite_where=text("status = 'running'"),
        postgresql_where=text("status = 'running'"),
    ),
    Index(
        "ux_runs_idempotency",
        "organization_id",
        "idempotency_key",
        unique=True,
        sqlite_where=text("idempotency_key IS NOT NULL"),
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
)

# Runs submitted together. Each item's end counts into its batch in the transaction that
# ends it; the one that ends the last item marks the callback due (``callback_due``), and the
# callback's delivery commits with the mark cleared: exactly one, never before the last item.
batches = Table(
    "batches",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("model", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("metadata", Text),
    Column("callback_url", Text),
    Column("idempotency_key", Text),
    Column("request_hash", Text),
    Column("items_total", Integer, nullable=False),
    Column("items_succeeded", Integer, nullable=False),
    Column("items_failed", Integer, nullable=False),
    Column("items_cancelled", Integer, nullable=False),
    Column("callback_due", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_batches_org_created", "organization_id", "created_at"),
    Index("ix_batches_completed", "completed_at"),
    Index(
        "ix_batches_callback_due",
        "completed_at",
        sqlite_where=text("callback_due"),
        postgresql_where=text("callback_due"),
    ),
    Index(
        "ux_batches_idempotency",
        "organization_id",
        "idempotency_key",
        unique=True,
        sqlite_where=text("idempotency_key IS NOT NULL"),
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
)

callback_secrets = Table(
    "callback_secrets",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("label", Text),
    Column("secret", Text, nullable=False),
    Column("key_prefix", Text, nullable=False),
    Column("is_current", Boolean, nullable=False),
    Column("disabled_at", UtcDateTime),
    Column("last_used_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # hmac (whsec_) or ed25519 (whsk_ in ``secret``, sealed like it; whpk_ here, plain).
    Column("type", Text, nullable=False, server_default=text("'hmac'")),
    Column("public_key", Text),
    Index(
        "ux_callback_secrets_current",
        "organization_id",
        "type",
        unique=True,
        sqlite_where=text("is_current"),
        postgresql_where=text("is_current"),
    ),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("run_id", Uuid, ForeignKey("runs.id")),
    Column("batch_id", Uuid),
    Column("callback_url", Text, nullable=False),
    Column("webhook_id", Text, nullable=False),
    Column("destination", Text),
    Column("recovery_id", Uuid),
    Column("payload_bytes", LargeBinary, nullable=False),
    Column("is_automatic", Boolean, nullable=False),
    Column("status", Text, nullable=False),
    Column("failure_reason_code", Text),
    Column("failure_detail", Text),
    Column("attempt_count", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("retry_policy", Text, nullable=False),
    Column("next_attempt_at", UtcDateTime),
    # While its destination's circuit holds it (next_attempt_at far ahead): when its own
    # retry ladder would try it. An open circuit probes no later than the earliest.
    Column("held_due_at", UtcDateTime),
    Column("signing_secret_id", Uuid),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime),
    Column("claimed_by", Text),
    Column("lease_until", UtcDateTime),
    # Which of its subject's events: 'terminal', or 'result:<id>' for a run's results.
    Column("event_key", Text, nullable=False, server_default=text("'terminal'")),
    # Set at the insert from ``ordered_callbacks``: it waits for the older ordered ones.
    Column("ordered", Boolean, nullable=False, server_default=text("false")),
    # The W3C trace context of its ``deliver`` span (traced deployments only).
    Column("traceparent", Text),
    Index("ix_deliveries_run", "run_id"),
    Index("ix_deliveries_org_created", "organization_id", "created_at", "id"),
    Index(
        "ix_deliveries_batch",
        "batch_id",
        sqlite_where=text("batch_id IS NOT NULL"),
        postgresql_where=text("batch_id IS NOT NULL"),
    ),
    Index("ix_deliveries_recovery", "recovery_id"),
    Index(
        "ix_deliveries_destination_pending",
        "destination",
        "next_attempt_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    # The dispatcher's claim: the earliest due pending deliveries.
    Index(
        "ix_deliveries_due",
        "next_attempt_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    # Ordered deliveries in flight, oldest first per URL: whether one waits its turn.
    Index(
        "ix_deliveries_ordered_in_flight",
        "organization_id",
        "callback_url",
        "created_at",
        "id",
        sqlite_where=text(ORDERED_IN_FLIGHT),
        postgresql_where=text(ORDERED_IN_FLIGHT),
    ),
    Index(
        "ix_deliveries_claimed_lease",
        "lease_until",
        sqlite_where=text("status = 'delivering'"),
        postgresql_where=text("status = 'delivering'"),
    ),
    # At most one delivery of each event in flight, enforced by the database itself: per
    # run and event, and per batch (whose one event is its end).
    Index(
        "ux_deliveries_in_flight",
        "run_id",
        "event_key",
        unique=True,
        sqlite_where=text("status IN ('pending', 'delivering') AND run_id IS NOT NULL"),
        postgresql_where=text("status IN ('pending', 'delivering') AND run_id IS NOT NULL"),
    ),
    Index(
        "ux_deliveries_batch_in_flight",
        "batch_id",
        unique=True,
        sqlite_where=text(
            "status IN ('pending', 'delivering') AND batch_id IS NOT NULL AND run_id IS NULL"
        ),
        postgresql_where=text(
            "status IN ('pending', 'delivering') AND batch_id IS NOT NULL AND run_id IS NULL"
        ),
    ),
)

# Callback URLs whose organization wants their callbacks one at a time, in order.
ordered_callbacks = Table(
    "ordered_callbacks",
    metadata,
    Column("organization_id", Uuid, ForeignKey("organizations.id"), primary_key=True),
    Column("callback_url", Text, primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("delivery_id", Uuid, ForeignKey("deliveries.id"), nullable=False),
    Column("organization_id", Uuid, nullable=False),
    Column("attempt_number", Integer, nullable=False),
    Column("status_code", Integer),
    Column("response_body", Text),
    Column("response_time_ms", Integer, nullable=False),
    Column("error_message", Text),
    Column("failure_reason_code", Text),
    Column("signing_secret_id", Uuid),
    Column("created_at", UtcDateTime, nullable=False),
    # Set when the outcome did not count: the worker had lost the delivery's claim.
    Column("refused_reason", Text),
    Index("ix_delivery_attempts_delivery", "delivery_id", "attempt_number"),
)

# One row per callback destination (``host:port``) that has failed: its circuit breaker.
destinations = Table(
    "destinations",
    metadata,
    Column("host", Text, primary_key=True),
    Column("consecutive_failures", Integer, nullable=False),
    Column("trips", Integer, nullable=False),
    Column("failing_since", UtcDateTime),
    Column("open_until", UtcDateTime),
    Column("disabled_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
)

recoveries = Table(
    "recoveries",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("organization_id", Uuid, ForeignKey("organizations.id"), nullable=False),
    Column("created_from", UtcDateTime, nullable=False),
    Column("created_to", UtcDateTime, nullable=False),
    Column("destination", Text),
    Column("queued", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# What a run sent while it worked, one callback event each (``result:<id>``).
run_results = Table(
    "run_results",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("run_id", Uuid, ForeignKey("runs.id"), nullable=False),
    Column("organization_id", Uuid, nullable=False),
    Column("position", Integer, nullable=False),
    Column("data", Text, nullable=False),
    Column("output_id", Uuid),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_run_results_run", "run_id", "position"),
)

# Every event of a run that asked for events, as its callback says it, for its stream.
run_events = Table(
    "run_events",
    metadata,
    Column("run_id", Uuid, ForeignKey("runs.id"), primary_key=True),
    Column("sequence", Integer, primary_key=True),
    Column("organization_id", Uuid, nullable=False),
    Column("event", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

run_outputs = Table(
    "run_outputs",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("run_id", Uuid, ForeignKey("runs.id"), nullable=False),
    Column("organization_id", Uuid, nullable=False),
    Column("position", Integer, nullable=False),
    Column("type", Text, nullable=False),
    Column("key", Text, nullable=False, unique=True),
    Column("content_type", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_run_outputs_run", "run_id", "position"),
)

# Secrets runback makes for itself (e.g. the key that signs output file URLs): kept in the
# database so they survive restarts and every process shares them.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("name", Text, primary_key=True),
    Column("secret", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)


# The receiving side (``runback receive``): one event per callback however often it arrives,
# each arrival kept raw, each output URL copied into the user's storage.
inbox_events = Table(
    "inbox_events",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("source", Text, nullable=False),
    Column("dedupe_key", Text, nullable=False),
    Column("event", Text),
    Column("run_id", Text),
    Column("batch_id", Text),
    Column("headshots_id", Text),
    Column("task_uuid", Text),
    Column("status", Text),
    Column("webhook_id", Text),
    Column("receipt_count", Integer, nullable=False),
    Column("handler_state", Text, nullable=False),
    Column("handler_attempts", Integer, nullable=False),
    Column("handler_error", Text),
    Column("handler_next_at", UtcDateTime),
    Column("first_received_at", UtcDateTime, nullable=False),
    Column("last_received_at", UtcDateTime, nullable=False),
    Column("claimed_by", Text),
    Column("lease_until", UtcDateTime),
    # A run's event's sequence, and whether a later one of its run had come first.
    Column("sequence", BigInteger),
    Column("stale", Boolean, nullable=False, server_default=false()),
    # Recorded by the reconciler from a polled run, not from a callback.
    Column("reconciled", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("source", "dedupe_key", name="ux_inbox_events_dedupe"),
    Index(
        "ix_inbox_events_handler_due",
        "handler_next_at",
        sqlite_where=text("handler_state = 'pending'"),
        postgresql_where=text("handler_state = 'pending'"),
    ),
    Index("ix_inbox_events_received", "first_received_at"),
    Index("ix_inbox_events_last_received", "last_received_at"),
    Index("ix_inbox_events_run", "source", "run_id"),
    Index(
        "ix_inbox_events_run_sequence",
        "source",
        "run_id",
        "sequence",
        sqlite_where=text("sequence IS NOT NULL"),
        postgresql_where=text("sequence IS NOT NULL"),
    ),
)

inbox_receipts = Table(
    "inbox_receipts",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("event_id", Uuid, ForeignKey("inbox_events.id")),
    Column("source", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("headers", Text, nullable=False),
    Column("scheme", Text),
    Column("rejected_reason", Text),
    Column("received_at", UtcDateTime, nullable=False),
    Index("ix_inbox_receipts_event", "event_id", "received_at"),
)

inbox_copies = Table(
    "inbox_copies",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("event_id", Uuid, ForeignKey("inbox_events.id"), nullable=False),
    Column("path", Text, nullable=False),
    Column("source_url", Text, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("expected_sha256", Text),
    Column("state", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime),
    Column("last_error", Text),
    Column("stored_key", Text),
    Column("size", BigInteger),
    Column("sha256", Text),
    Column("content_type", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime),
    Column("claimed_by", Text),
    Column("lease_until", UtcDateTime),
    UniqueConstraint("event_id", "path", name="ux_inbox_copies_path"),
    Index(
        "ix_inbox_copies_due",
        "next_attempt_at",
        sqlite_where=text("state = 'pending'"),
        postgresql_where=text("state = 'pending'"),
    ),
)

inbox_expected = Table(
    "inbox_expected",
    metadata,
    Column("source", Text, primary_key=True),
    Column("run_id", Text, primary_key=True),
    Column("state", Text, nullable=False),
    Column("expected_by", UtcDateTime, nullable=False),
    Column("next_poll_at", UtcDateTime),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    # No foreign key: retention deletes old events, and the expectation keeps its history.
    Column("event_id", Uuid),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("settled_at", UtcDateTime),
    Index(
        "ix_inbox_expected_due",
        "next_poll_at",
        sqlite_where=text("state = 'waiting'"),
        postgresql_where=text("state = 'waiting'"),
    ),
    Index("ix_inbox_expected_state", "state", "created_at"),
)

# A dashboard login: the cookie carries a random id, the row only its hash, so a copy of the
# database opens no session. The key's row (not the key) is kept: revoking it ends these.
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("id_hash", Text, primary_key=True),
    Column("api_key_id", Uuid, ForeignKey("api_keys.id"), nullable=False),
    Column("csrf_token", Text, nullable=False),
    # The organization the pages show, for a key of several (None: the key's default).
    Column("organization_id", Uuid),
    Column("flash", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index("ix_dashboard_sessions_key", "api_key_id"),
    Index("ix_dashboard_sessions_expires", "expires_at"),
)
