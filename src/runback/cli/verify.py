"""``runback verify``: does a stored callback's signature hold, and if not, why? Part of the
light install, so it needs nothing but the standard library.

The body is read as raw bytes (a file saved from the request, never re-serialised JSON); the
headers as a JSON object or as ``Name: value`` lines, the way a log or ``curl -i`` shows them.
``--event`` reads both from the inbox of ``runback receive`` instead: that needs the server
install, so the reading is handed in by the caller (``runback.cli.main``), never imported here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from runback.core.keys import PRIVATE_KEY_PREFIX, PUBLIC_KEY_PREFIX
from runback.core.signing import SECRET_PREFIX
from runback.core.verification import DEFAULT_TOLERANCE, Verified, verify
from runback.errors import InvalidSecretError, RunbackError, VerificationCause, VerificationError

HELP = "Say whether a callback's signature holds, and if not, why."
MAX_FILE_BYTES = 16 * 1024 * 1024

EXIT_VALID: Final = 0
EXIT_USAGE: Final = 2
EXIT_CODES: Final = {
    VerificationCause.WRONG_SECRET: 1,
    VerificationCause.BODY_CHANGED: 3,
    VerificationCause.BODY_RESERIALISED: 4,
    VerificationCause.SECRET_FORMAT: 5,
    VerificationCause.TIMESTAMP_STALE: 6,
    VerificationCause.TIMESTAMP_FUTURE: 7,
    VerificationCause.MALFORMED_HEADER: 8,
    VerificationCause.MISSING_HEADER: 9,
    VerificationCause.SCHEME_MISMATCH: 10,
}
"""The exit status of each cause of an invalid signature (0: valid, 2: a usage problem)."""

_EPILOG = "exit status:\n  0   valid\n  2   usage: bad flags, a file that cannot be read, ...\n" + (
    "".join(f"  {code:<3} invalid: {cause}\n" for cause, code in EXIT_CODES.items())
)


class UsageError(Exception):
    """A usage problem: said in one line, exit status 2."""


@dataclass(frozen=True, slots=True)
class StoredReceipt:
    """A callback as ``runback receive`` kept it, with what its source verifies with."""

    body: bytes
    headers: list[tuple[str, str]]
    received_at: datetime
    secrets: tuple[str, ...]
    require_standard: bool
    label: str
    """How the line names it, e.g. ``event 0193... (receipt 2 of 2, source default)``."""


@dataclass(frozen=True, slots=True)
class _Inputs:
    body: bytes
    headers: list[tuple[str, str]]
    secrets: list[str]
    now: datetime | None
    require_standard: bool
    label: str


@dataclass(frozen=True, slots=True)
class EventOptions:
    """Where ``--event`` reads from: the receiver's data directory or database."""

    event_id: str
    data_dir: Path | None
    database_url: str | None


ReceiptReader = Callable[[EventOptions], StoredReceipt]
"""Reads an inbox event's latest receipt; raises ``UsageError`` to say why it cannot."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runback verify",
        description=HELP,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--headers", type=Path, help="the request's headers: a JSON object or 'Name: value' lines"
    )
    parser.add_argument("--body", type=Path, help="the raw request body, exactly as received")
    parser.add_argument(
        "--event",
        help="instead of --headers and --body: an event id of runback receive's inbox "
        "(its latest receipt, as of its arrival; needs the server install)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="with --event: the receiver's data directory [env RUNBACK_RECEIVE_DATA_DIR]",
    )
    parser.add_argument(
        "--database-url", help="with --event: the receiver's database [env RUNBACK_DATABASE_URL]"
    )
    parser.add_argument(
        "--secret",
        action="append",
        help="a secret to verify with; repeat during a rotation [env RUNBACK_SECRET; with "
        "--event, the source's secrets]",
    )
    parser.add_argument(
        "--require-standard",
        action="store_true",
        help="refuse a Runflow-Signature alone (it has no timestamp)",
    )
    parser.add_argument(
        "--at", type=int, help="check the timestamp as of this Unix time (a stored callback's)"
    )
    parser.add_argument(
        "--tolerance",
        type=int,
        default=int(DEFAULT_TOLERANCE.total_seconds()),
        help="seconds the timestamp may differ from now (or --at) [%(default)s]",
    )
    return parser


def verify_main(argv: Sequence[str], *, read_receipt: ReceiptReader | None = None) -> int:
    """Run ``runback verify`` with ``argv``; answers the exit status (``EXIT_CODES``).

    ``read_receipt`` serves ``--event``; without it, ``--event`` says it needs the server.
    """
    options = _parser().parse_args(argv)
    try:
        given = _inputs(options, read_receipt)
        if not given.secrets:
            raise UsageError(
                "give the secret to verify with: --secret whsec_... (or RUNBACK_SECRET)"
            )
    except UsageError as stop:
        print(f"runback: {stop}", file=sys.stderr)
        return EXIT_USAGE
    tolerance = timedelta(seconds=options.tolerance)
    try:
        verified = verify(
            given.body,
            given.headers,
            given.secrets,
            tolerance=tolerance,
            require_standard=given.require_standard,
            now=given.now,
        )
    except InvalidSecretError as exc:
        cause = VerificationCause.SECRET_FORMAT
        print(f"invalid ({cause}): {exc}{_hint(given.secrets)}", file=sys.stderr)
        return EXIT_CODES[cause]
    except VerificationError as exc:
        print(f"invalid ({exc.cause}): {given.label}{exc}", file=sys.stderr)
        return EXIT_CODES[exc.cause]
    except RunbackError as exc:
        print(f"runback: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"valid: {given.label}{_described(verified)}")
    return EXIT_VALID


def _inputs(options: argparse.Namespace, read_receipt: ReceiptReader | None) -> _Inputs:
    """The body, headers, secrets, time and strictness to verify with, and how to name it."""
    given = options.secret or [
        s.strip() for s in os.environ.get("RUNBACK_SECRET", "").split(",") if s.strip()
    ]
    now = datetime.fromtimestamp(options.at, UTC) if options.at is not None else None
    if options.event is None:
        if options.headers is None or options.body is None:
            raise UsageError("give --headers FILE and --body FILE (or --event ID)")
        headers = _headers(_read(options.headers).decode("utf-8", "replace"))
        return _Inputs(_read(options.body), headers, given, now, options.require_standard, "")
    if options.headers is not None or options.body is not None:
        raise UsageError("give either --event or --headers and --body, not both")
    if read_receipt is None:
        raise UsageError(
            "--event reads runback receive's inbox, part of the server: "
            "pip install 'runback[server]'"
        )
    stored = read_receipt(EventOptions(options.event, options.data_dir, options.database_url))
    return _Inputs(
        stored.body,
        stored.headers,
        given or list(stored.secrets),
        now or stored.received_at,
        options.require_standard or stored.require_standard,
        f"{stored.label}: ",
    )


def _described(verified: Verified) -> str:
    signed = f"{verified.scheme} signature"
    if verified.webhook_id is not None and verified.timestamp is not None:
        moment = datetime.fromtimestamp(verified.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        signed += f" of {verified.webhook_id} at {verified.timestamp} ({moment})"
    return f"{signed}, secret {verified.secret_prefix}..."


def _hint(secrets: Sequence[str]) -> str:
    """What to do about a secret that is not of its form, when it is plain to see."""
    if any(
        not s.startswith((SECRET_PREFIX, PUBLIC_KEY_PREFIX, PRIVATE_KEY_PREFIX)) for s in secrets
    ):
        return f" (a secret shown without its prefix takes {SECRET_PREFIX} before it)"
    return ""


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UsageError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _headers(text: str) -> list[tuple[str, str]]:
    """Header pairs as given: a name twice stays twice, for the verifier to refuse."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        # A request or status line ("POST /hook HTTP/1.1") has no colon before its space.
        pairs = (line.split(":", 1) for line in stripped.splitlines() if ":" in line)
        return [(name.strip(), value.strip()) for name, value in pairs if " " not in name.strip()]
    try:
        found = json.loads(stripped)
    except ValueError as exc:
        raise UsageError(f"the headers file is not a JSON object: {exc}") from None
    if not isinstance(found, dict):
        raise UsageError("the headers file is not a JSON object")
    return [(str(name), str(value)) for name, value in found.items()]
