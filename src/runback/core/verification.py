"""Verifying a received callback: the receiving side of ``runback.core.signing``.

Sans-IO: raw body bytes, header pairs, secrets and ``now`` in; a ``Verified`` record out, or
one ``VerificationError`` subclass whose message says what to check. The rules:

* **Standard Webhooks** when ``webhook-signature`` is present: ``webhook-id`` and
  ``webhook-timestamp`` must be too. The header holds space-separated ``<version>,<base64>``
  entries; ``v1`` is HMAC-SHA256 keyed with the base64-decoded part of a ``whsec_`` secret,
  ``v1a`` is Ed25519 checked with a ``whpk_`` public key (or the public half of a ``whsk_``
  private key), both over ``{id}.{timestamp}.{body}``; other versions are ignored. One entry
  must match one secret, then the timestamp must lie within the tolerance of ``now``, past or
  future. Signatures are checked first, so a timestamp error always means a genuine request:
  clock skew, or a replay.
* **Runflow-Signature** otherwise: 64 lowercase hex characters, HMAC-SHA256 of the raw body
  keyed with the UTF-8 bytes of the whole ``whsec_`` string. It carries no timestamp, so a
  captured request verifies forever: ``require_standard`` refuses it.
* **Rotation**: several secrets at once, any one matching is enough. All comparisons are
  constant-time.
* **Total**: every malformed header raises ``MalformedSignatureError`` naming the header and
  the form expected; nothing else (``ValueError``, ``binascii.Error``, ``UnicodeError``)
  escapes from the request's input. Secrets are checked once, in ``Verifier()``.
* **Diagnosed**: every error carries a ``cause`` (``runback.errors.VerificationCause``). A
  mismatch is searched for its cause only once it has failed (``runback.core.diagnosis``): a
  re-serialised body, a secret used in the wrong form, a changed body, the wrong secret; the
  success path does no more work than before.

Ed25519 needs the ``cryptography`` package, imported only when a ``whpk_``/``whsk_`` key is
configured; the key formats are ``runback.core.keys``'s, shared with the sender.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Literal

from runback.core.diagnosis import (
    diagnose_mismatch,
    runflow_misuses,
    scheme_mismatch,
    standard_misuses,
)
from runback.core.keys import PRIVATE_KEY_PREFIX, PUBLIC_KEY_PREFIX, load_public_key
from runback.core.signing import SECRET_PREFIX, runflow_signature, secret_key
from runback.errors import (
    ConfigError,
    InvalidSecretError,
    MalformedSignatureError,
    MissingSignatureError,
    SignatureMismatchError,
    TimestampOutsideToleranceError,
    VerificationCause,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

Scheme = Literal["runflow", "v1", "v1a"]
Headers = Mapping[str, str] | Iterable[tuple[str, str]]

DEFAULT_TOLERANCE: Final = timedelta(minutes=5)

RUNFLOW_HEADER: Final = "Runflow-Signature"
ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"
_STANDARD: Final = f"{ID_HEADER}, {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}"
_HEADERS: Final = {
    name.lower(): name for name in (RUNFLOW_HEADER, ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
}

_RUNFLOW_FORM: Final = re.compile(r"[0-9a-f]{64}")
_ID_FORM: Final = re.compile(r"[\x21-\x7e]{1,256}")  # printable ASCII, no space
_TIMESTAMP_FORM: Final = re.compile(r"[0-9]{1,12}")  # unix seconds, up to year 33658
_SIGNATURE_BYTES: Final = {"v1": 32, "v1a": 64}
_MAX_ENTRIES: Final = 32  # bounds the Ed25519 work one request can ask for
_PREFIX_CHARS: Final = 10

_ENTRIES_FORM: Final = "space-separated 'v1,<base64>' or 'v1a,<base64>' entries"
_MILLISECONDS_DIGITS: Final = 13


@dataclass(frozen=True)
class Verified:
    """An authentic callback: how it was signed, and by which secret.

    ``webhook_id`` and ``timestamp`` are set only when a Standard Webhooks signature covered
    them (``scheme`` ``v1`` or ``v1a``); ``secret_prefix`` shows the matching secret's first
    characters, never the whole secret.
    """

    scheme: Scheme
    webhook_id: str | None
    timestamp: int | None
    secret_prefix: str


@dataclass(frozen=True)
class _HmacSecret:
    label: str
    secret: str
    key: bytes


@dataclass(frozen=True)
class _PublicKey:
    label: str
    key: Ed25519PublicKey


class Verifier:
    """Verifies callbacks against a fixed set of secrets; build once, use for every request.

    ``secrets`` are ``whsec_`` (HMAC: ``Runflow-Signature`` and ``v1``), ``whpk_`` or
    ``whsk_`` (Ed25519: ``v1a``) strings; a lone string counts as one secret. A malformed one
    raises ``InvalidSecretError`` naming its position and kind, never its content.
    """

    def __init__(
        self,
        secrets: Sequence[str],
        *,
        tolerance: timedelta = DEFAULT_TOLERANCE,
        require_standard: bool = False,
    ) -> None:
        if tolerance < timedelta(0):
            raise ConfigError(f"the timestamp tolerance must not be negative, not {tolerance}")
        self._hmac, self._public = _parse_secrets(
            [secrets] if isinstance(secrets, str) else secrets
        )
        self.tolerance = tolerance
        self.require_standard = require_standard

    def verify(self, body: bytes, headers: Headers, *, now: datetime | None = None) -> Verified:
        """Verify ``body`` (the raw bytes received) against ``headers``; raise if not authentic.

        ``now`` (timezone-aware) defaults to the real UTC time.
        """
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError(
                f"verify the raw request body as bytes, exactly as received, not a {type(body)}"
            )
        if now is not None and now.utcoffset() is None:
            raise ValueError("now must be a timezone-aware datetime")
        found = _collect(headers)
        if SIGNATURE_HEADER in found:
            return self._verify_standard(bytes(body), found, now)
        if RUNFLOW_HEADER in found and self.require_standard:
            raise MissingSignatureError(
                f"this receiver requires the Standard Webhooks headers ({_STANDARD}): "
                f"{RUNFLOW_HEADER} alone has no timestamp, so it could be a replayed request",
                cause=VerificationCause.SCHEME_MISMATCH,
            )
        if RUNFLOW_HEADER in found:
            return self._verify_runflow(bytes(body), found[RUNFLOW_HEADER])
        alternative = "" if self.require_standard else f", or {RUNFLOW_HEADER}"
        raise MissingSignatureError(
            f"the request is not signed: expected {_STANDARD}{alternative}; "
            "check that the sender has a secret"
        )

    def _verify_runflow(self, body: bytes, value: str) -> Verified:
        if not _RUNFLOW_FORM.fullmatch(value):
            raise MalformedSignatureError(
                f"{RUNFLOW_HEADER} must be 64 lowercase hex characters (HMAC-SHA256 of the raw "
                f"body), not {_describe(value)}",
                header=RUNFLOW_HEADER,
            )
        for secret in self._hmac:
            if hmac.compare_digest(runflow_signature(secret.secret, body), value):
                return Verified("runflow", None, None, secret.label)
        raise self._runflow_mismatch(body, value)

    def _runflow_mismatch(self, body: bytes, value: str) -> SignatureMismatchError:
        if not self._hmac:
            return SignatureMismatchError(
                f"{RUNFLOW_HEADER} is an HMAC signature and only Ed25519 keys (whpk_, whsk_) "
                "are configured: configure the sender's whsec_ secret",
                cause=VerificationCause.SCHEME_MISMATCH,
            )
        held = [(s.secret, s.key) for s in self._hmac]
        return diagnose_mismatch(
            body,
            header=RUNFLOW_HEADER,
            verifies=lambda candidate: any(
                hmac.compare_digest(runflow_signature(secret, candidate), value)
                for secret, _ in held
            ),
            misuses=runflow_misuses(held, body, value),
        )

    def _verify_standard(
        self, body: bytes, found: dict[str, str], now: datetime | None
    ) -> Verified:
        for name in (ID_HEADER, TIMESTAMP_HEADER):
            if name not in found:
                raise MissingSignatureError(f"{SIGNATURE_HEADER} is present but {name} is not")
        msg_id, stamp = found[ID_HEADER], found[TIMESTAMP_HEADER]
        if not _ID_FORM.fullmatch(msg_id):
            raise MalformedSignatureError(
                f"{ID_HEADER} must be 1 to 256 printable ASCII characters without spaces, "
                f"not {_describe(msg_id)}",
                header=ID_HEADER,
            )
        if not _TIMESTAMP_FORM.fullmatch(stamp):
            millis = stamp.isdigit() and len(stamp) == _MILLISECONDS_DIGITS
            raise MalformedSignatureError(
                f"{TIMESTAMP_HEADER} must be unix seconds in decimal digits, not "
                f"{_describe(stamp)}" + (" (milliseconds, it seems)" if millis else ""),
                header=TIMESTAMP_HEADER,
            )
        entries = _parse_entries(found[SIGNATURE_HEADER])
        # Both headers matched ASCII-only patterns: encoding cannot fail.
        prefix = b"%s.%s." % (msg_id.encode(), stamp.encode())
        matched = self._match(entries, prefix + body)
        if matched is None:
            raise self._standard_mismatch(entries, prefix, body)
        _check_tolerance(int(stamp), now, self.tolerance)
        return Verified(matched[0], msg_id, int(stamp), matched[1])

    def _match(self, entries: list[tuple[str, bytes]], signed: bytes) -> tuple[Scheme, str] | None:
        hmacs = [raw for version, raw in entries if version == "v1"]
        if hmacs:
            for secret in self._hmac:
                expected = hmac.new(secret.key, signed, hashlib.sha256).digest()
                if any(hmac.compare_digest(expected, raw) for raw in hmacs):
                    return "v1", secret.label
        ed25519s = [raw for version, raw in entries if version == "v1a"]
        for public in self._public:
            if any(_ed25519_verifies(public.key, raw, signed) for raw in ed25519s):
                return "v1a", public.label
        return None

    def _standard_mismatch(
        self, entries: list[tuple[str, bytes]], prefix: bytes, body: bytes
    ) -> SignatureMismatchError:
        hmacs = [raw for version, raw in entries if version == "v1"]
        unmatched = scheme_mismatch(
            hmacs=bool(hmacs),
            ed25519s=any(version == "v1a" for version, _ in entries),
            hmac_held=bool(self._hmac),
            public_held=bool(self._public),
        )
        if unmatched is not None:
            return SignatureMismatchError(unmatched, cause=VerificationCause.SCHEME_MISMATCH)
        held = [(s.secret, s.key) for s in self._hmac]
        return diagnose_mismatch(
            body,
            header=SIGNATURE_HEADER,
            verifies=lambda candidate: self._match(entries, prefix + candidate) is not None,
            misuses=standard_misuses(held, prefix + body, hmacs),
        )


def verify(
    body: bytes,
    headers: Headers,
    secrets: Sequence[str],
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    require_standard: bool = False,
    now: datetime | None = None,
) -> Verified:
    """Verify one callback; ``Verifier(secrets, ...).verify(body, headers, now=now)``."""
    verifier = Verifier(secrets, tolerance=tolerance, require_standard=require_standard)
    return verifier.verify(body, headers, now=now)


def _collect(headers: Headers) -> dict[str, str]:
    """The signature headers, whatever their case; a repeated one is ambiguous: malformed."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, str] = {}
    for name, value in pairs:
        lowered = name.lower()
        if lowered not in _HEADERS:
            continue
        canonical = _HEADERS[lowered]
        if canonical in found:
            raise MalformedSignatureError(
                f"{canonical} appears more than once; it must appear once", header=canonical
            )
        found[canonical] = value.strip(" \t")
    return found


def _parse_entries(value: str) -> list[tuple[str, bytes]]:
    """The ``v1``/``v1a`` entries of ``webhook-signature``, decoded; unknown versions dropped."""
    parts = value.split()
    if not parts or len(parts) > _MAX_ENTRIES:
        raise MalformedSignatureError(
            f"{SIGNATURE_HEADER} must hold 1 to {_MAX_ENTRIES} {_ENTRIES_FORM}, "
            f"not {len(parts)} entries",
            header=SIGNATURE_HEADER,
        )
    entries: list[tuple[str, bytes]] = []
    for position, part in enumerate(parts, 1):
        version, comma, encoded = part.partition(",")
        if not version or not comma:
            raise MalformedSignatureError(
                f"{SIGNATURE_HEADER} entry {position} is not '<version>,<base64>': "
                f"expected {_ENTRIES_FORM}",
                header=SIGNATURE_HEADER,
            )
        size = _SIGNATURE_BYTES.get(version)
        if size is None:
            continue  # a version this verifier does not know: the spec says skip it
        raw = _b64decode(encoded)
        if raw is None or len(raw) != size:
            raise MalformedSignatureError(
                f"{SIGNATURE_HEADER} entry {position} ({version}) must be standard base64 of "
                f"{size} bytes",
                header=SIGNATURE_HEADER,
            )
        entries.append((version, raw))
    return entries


def _check_tolerance(timestamp: int, now: datetime | None, tolerance: timedelta) -> None:
    offset = timestamp - (now or datetime.now(UTC)).timestamp()
    if abs(offset) <= tolerance.total_seconds():
        return
    past = offset < 0
    raise TimestampOutsideToleranceError(
        f"{TIMESTAMP_HEADER} is {math.ceil(abs(offset))} s "
        f"{'in the past' if past else 'in the future'}, beyond the tolerance of "
        f"{tolerance.total_seconds():g} s either way: "
        + (
            "a replayed request, a callback verified long after it came (verify it as of its "
            "arrival), or a sender's clock behind (NTP)"
            if past
            else "the sender's clock is ahead of the receiver's: check both (NTP)"
        ),
        cause=VerificationCause.TIMESTAMP_STALE if past else VerificationCause.TIMESTAMP_FUTURE,
    )


def _describe(value: str) -> str:
    """A header value in an error message: its size only, never echoed (it may be huge)."""
    return f"a value of {len(value)} characters" if value else "an empty value"


def _b64decode(text: str) -> bytes | None:
    """Standard, padded base64, or ``None``."""
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text
        return None


def _ed25519_verifies(key: Ed25519PublicKey, signature: bytes, signed: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, signed)
    except InvalidSignature:
        return False
    return True


def _parse_secrets(
    secrets: Sequence[str],
) -> tuple[tuple[_HmacSecret, ...], tuple[_PublicKey, ...]]:
    if not secrets:
        raise ConfigError("a verifier needs at least one secret (whsec_, whpk_ or whsk_)")
    hmacs: list[_HmacSecret] = []
    publics: list[_PublicKey] = []
    for position, secret in enumerate(secrets, 1):
        if not isinstance(secret, str):
            raise InvalidSecretError(f"secret {position} is a {type(secret).__name__}, not a str")
        label = secret[: secret.find("_") + 1 + _PREFIX_CHARS]
        if secret.startswith(SECRET_PREFIX):
            hmacs.append(_HmacSecret(label, secret, _hmac_key(position, secret)))
        elif secret.startswith((PUBLIC_KEY_PREFIX, PRIVATE_KEY_PREFIX)):
            publics.append(_PublicKey(label, load_public_key(secret, name=f"secret {position}")))
        else:
            raise InvalidSecretError(
                f"secret {position} does not start with {SECRET_PREFIX}, {PUBLIC_KEY_PREFIX} "
                f"or {PRIVATE_KEY_PREFIX}"
            )
    return tuple(hmacs), tuple(publics)


def _hmac_key(position: int, secret: str) -> bytes:
    try:
        key = secret_key(secret)
    except InvalidSecretError:
        key = b""
    if not key:
        raise InvalidSecretError(
            f"secret {position} ({SECRET_PREFIX}...) is not {SECRET_PREFIX} followed by "
            "standard base64 of at least one byte"
        )
    return key
