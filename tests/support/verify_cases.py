"""One callback per cause of a failed verification, for the core's and the CLI's table tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from runback.core.signing import generate_secret, runflow_signature, signature_headers

SECRET = generate_secret(lambda n: bytes(range(n)))
STRANGER = generate_secret(lambda n: b"\x07" * n)
BODY = '{"event":"run.completed","run_id":"0193b7e4","metadata":{"note":"café"}}'.encode()
MSG_ID = "msg_0193b7e48c1a7d2e9f3a1b2c3d4e5f60"
NOW = datetime(2026, 5, 6, 10, 0, tzinfo=UTC)
TS = int(NOW.timestamp())


def signed(body: bytes = BODY, *, secret: str = SECRET, ts: int = TS) -> dict[str, str]:
    """The Standard Webhooks headers runback sends for ``body``."""
    return signature_headers(body=body, msg_id=MSG_ID, timestamp=ts, current=None, active=[secret])


def keyed_whole(body: bytes = BODY) -> dict[str, str]:
    """A v1 signature keyed with the whole ``whsec_`` string: a sender's mistake."""
    digest = hmac.new(SECRET.encode(), b"%s.%d.%s" % (MSG_ID.encode(), TS, body), hashlib.sha256)
    entry = "v1," + base64.b64encode(digest.digest()).decode()
    return {**signed(body), "webhook-signature": entry}


@dataclass(frozen=True)
class Case:
    """A received callback, what it is verified with, and the cause expected (None: valid)."""

    cause: str | None
    body: bytes
    headers: dict[str, str]
    secrets: tuple[str, ...] = (SECRET,)
    require_standard: bool = False
    says: tuple[str, ...] = field(default=())
    """Words the message must hold."""


CASES = {
    "valid": Case(None, BODY, signed()),
    # parsed and dumped again by Python's json: spaces after ',' and ':', é as \u00e9
    "body_reserialised": Case(
        "body_reserialised",
        json.dumps(json.loads(BODY)).encode(),
        signed(),
        says=("first difference at byte 9", "compact JSON"),
    ),
    # cut short on the way: no longer JSON at all
    "body_changed": Case("body_changed", BODY[:-1], signed(), says=("not UTF-8 JSON",)),
    # signed by another organization's secret; the body is as runback sends it
    "wrong_secret": Case("wrong_secret", BODY, signed(secret=STRANGER), says=("secret",)),
    # the right secret, used whole as the HMAC key (Runflow-Signature's way) for v1
    "secret_format": Case("secret_format", BODY, keyed_whole(), says=("whole whsec_ string",)),
    "timestamp_stale": Case(
        "timestamp_stale", BODY, signed(ts=TS - 3600), says=("3600 s in the past",)
    ),
    "timestamp_future": Case(
        "timestamp_future", BODY, signed(ts=TS + 3600), says=("3600 s in the future",)
    ),
    "malformed_header": Case(
        "malformed_header",
        BODY,
        {**signed(), "webhook-signature": "v1,not base64!"},
        says=("standard base64",),
    ),
    "missing_header": Case("missing_header", BODY, {}, says=("not signed",)),
    # Runflow-Signature alone, where the receiver requires Standard Webhooks
    "scheme_mismatch": Case(
        "scheme_mismatch",
        BODY,
        {"Runflow-Signature": runflow_signature(SECRET, BODY)},
        require_standard=True,
        says=("replayed",),
    ),
}
"""One row per outcome; the names are the causes (``runback.errors.VerificationCause``)."""
