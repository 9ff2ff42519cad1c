"""``runback verify``: does a stored callback's signature hold? Part of the light install, so
it needs nothing but the standard library.

The body is read as raw bytes (a file saved from the request, never re-serialised JSON); the
headers as a JSON object or as ``Name: value`` lines, the way a log or ``curl -i`` shows them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runback.core.verification import DEFAULT_TOLERANCE, verify
from runback.errors import RunbackError

HELP = "Say whether a callback's signature holds, and if not, why."
MAX_FILE_BYTES = 16 * 1024 * 1024


class _UsageError(Exception):
    """A usage problem: said in one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runback verify", description=HELP)
    parser.add_argument(
        "--headers",
        type=Path,
        required=True,
        help="the request's headers: a JSON object or 'Name: value' lines",
    )
    parser.add_argument(
        "--body", type=Path, required=True, help="the raw request body, exactly as received"
    )
    parser.add_argument(
        "--secret",
        action="append",
        help="a secret to verify with; repeat during a rotation [env RUNBACK_SECRET]",
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


def verify_main(argv: Sequence[str]) -> int:
    """Run ``runback verify`` with ``argv``; answers the exit status (0 valid, 1 invalid)."""
    options = _parser().parse_args(argv)
    secrets = options.secret or [
        s for s in os.environ.get("RUNBACK_SECRET", "").split(",") if s.strip()
    ]
    try:
        if not secrets:
            raise _UsageError(
                "give the secret to verify with: --secret whsec_... (or RUNBACK_SECRET)"
            )
        body = _read(options.body)
        headers = _headers(_read(options.headers).decode("utf-8", "replace"))
    except _UsageError as stop:
        print(f"runback: {stop}", file=sys.stderr)
        return 2
    now = datetime.fromtimestamp(options.at, UTC) if options.at is not None else None
    try:
        verified = verify(
            body, headers, secrets, tolerance=timedelta(seconds=options.tolerance), now=now
        )
    except RunbackError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    signed = f"{verified.scheme} signature"
    if verified.webhook_id is not None:
        signed += f" of {verified.webhook_id} at {verified.timestamp}"
    print(f"valid: {signed}, secret {verified.secret_prefix}...")
    return 0


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise _UsageError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise _UsageError(f"cannot read {path}: {exc.strerror}") from None


def _headers(text: str) -> dict[str, str]:
    stripped = text.strip()
    if not stripped.startswith("{"):
        pairs = (line.split(":", 1) for line in stripped.splitlines() if ":" in line)
        return {name.strip(): value.strip() for name, value in pairs}
    try:
        found = json.loads(stripped)
    except ValueError as exc:
        raise _UsageError(f"the headers file is not a JSON object: {exc}") from None
    if not isinstance(found, dict):
        raise _UsageError("the headers file is not a JSON object")
    return {str(name): str(value) for name, value in found.items()}
