"""Why a signature matched no secret: the search made after a failure, never before one.

Verifying stays as cheap as it was; only a mismatch comes here, with a way to ask "would this
body verify?" and "would the body verify with a secret held, used in this wrong form?". The
answer is one ``SignatureMismatchError`` whose ``cause`` says what was found, in this order:

1. ``body_reserialised``: a usual re-serialisation of the received body verifies (a trailing
   newline added or removed, line ends changed, a byte order mark dropped; JSON dumped
   compact or spaced, non-ASCII escaped or not, keys sorted). The error's ``difference`` gives
   the first differing byte and an excerpt of each body around it.
2. ``secret_format``: the signature was made with a secret held, keyed the wrong way (the
   whole ``whsec_`` string where the scheme keys with its decoded bytes, or the reverse):
   ``runflow_misuses`` and ``standard_misuses`` list the ways tried.

Before all of these, ``scheme_mismatch`` says when no secret held could check the signature
at all (``v1a`` with only ``whsec_`` secrets, ...).
3. ``body_changed``: the body is not what runback sends (compact UTF-8 JSON), so it was
   changed after it was signed in a way not recognised.
4. ``wrong_secret``: the body looks as sent; no secret held made the signature.

The work is bounded: bodies over ``MAX_DIAGNOSED_BODY`` bytes get no search, and a body gets
at most a dozen candidate forms. Standard library only (the light install).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from runback.core.signing import SECRET_PREFIX
from runback.errors import BodyDifference, SignatureMismatchError, VerificationCause

MAX_DIAGNOSED_BODY: Final = 256 * 1024
"""Bytes of body past which a mismatch is not searched (each form costs a signature check)."""

EXCERPT_BYTES: Final = 12
"""Bytes shown either side of the first difference."""

_BOM: Final = b"\xef\xbb\xbf"
_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BLANK: Final = re.compile(rb"[ \t\r\n]")

_RUNFLOW: Final = "Runflow-Signature"
_STANDARD: Final = "webhook-signature"

HmacSecrets = Sequence[tuple[str, bytes]]
"""Each HMAC secret held: its whole ``whsec_`` string and its decoded key."""

Verifies = Callable[[bytes], bool]
"""Whether a candidate body verifies with one of the secrets held."""

Misuse = tuple[str, Callable[[], bool]]
"""A wrong way of using the secrets held, in words, and whether the received body verifies
when they are used that way."""


def diagnose_mismatch(
    body: bytes,
    *,
    header: str,
    verifies: Verifies,
    misuses: Sequence[Misuse] = (),
) -> SignatureMismatchError:
    """The error for ``body`` whose ``header`` matched no secret, with the cause found."""
    searched = len(body) <= MAX_DIAGNOSED_BODY
    if searched:
        for form, candidate in reserialisations(body):
            if verifies(candidate):
                return _reserialised(header, body, candidate, form)
    for wrong_way, holds in misuses:
        if holds():
            return SignatureMismatchError(
                f"{header} was made with a secret held here, but {wrong_way}: the sender and "
                "this receiver use the secret in different forms; fix the signing side",
                cause=VerificationCause.SECRET_FORMAT,
            )
    shape = unlike_sent(body) if searched else None
    if shape is not None:
        return SignatureMismatchError(
            f"{header} matches no secret and the body is not what runback sends ({shape}): it "
            "was changed after it was signed; verify the raw request body exactly as received, "
            "before any parsing or decoding",
            cause=VerificationCause.BODY_CHANGED,
        )
    unsearched = "" if searched else f" (a body over {MAX_DIAGNOSED_BODY} bytes is not searched)"
    return SignatureMismatchError(
        f"{header} matches no secret, and the body looks as sent{unsearched}: the secret is "
        "most likely wrong (another organization's or environment's, or one retired by a "
        "rotation: during a rotation, configure the old and the new secret); compare its "
        "prefix with the sender's secrets",
        cause=VerificationCause.WRONG_SECRET,
    )


def runflow_misuses(held: HmacSecrets, body: bytes, value: str) -> list[Misuse]:
    """The wrong ways to key ``Runflow-Signature`` (hex ``value``) with the secrets held."""

    def holds(keys: list[bytes]) -> Callable[[], bool]:
        return lambda: any(
            hmac.compare_digest(hmac.new(key, body, hashlib.sha256).hexdigest(), value)
            for key in keys
        )

    return [
        (
            f"keyed with the base64-decoded bytes after {SECRET_PREFIX} (the Standard Webhooks "
            f"way), where {_RUNFLOW} keys with the whole {SECRET_PREFIX} string",
            holds([key for _, key in held]),
        ),
        (
            f"keyed with the text after {SECRET_PREFIX}, where {_RUNFLOW} keys with the whole "
            f"{SECRET_PREFIX} string, prefix included",
            holds([_unprefixed(secret) for secret, _ in held]),
        ),
    ]


def standard_misuses(held: HmacSecrets, signed: bytes, signatures: Sequence[bytes]) -> list[Misuse]:
    """The wrong ways to key ``v1`` entries (``signatures``, over ``signed``) with the
    secrets held."""

    def holds(keys: list[bytes]) -> Callable[[], bool]:
        return lambda: any(
            hmac.compare_digest(hmac.new(key, signed, hashlib.sha256).digest(), raw)
            for key in keys
            for raw in signatures
        )

    return [
        (
            f"keyed with the whole {SECRET_PREFIX} string (the {_RUNFLOW} way), where v1 keys "
            f"with the base64-decoded bytes after {SECRET_PREFIX}",
            holds([secret.encode() for secret, _ in held]),
        ),
        (
            f"keyed with the base64 text after {SECRET_PREFIX}, not decoded, where v1 keys with "
            "the decoded bytes",
            holds([_unprefixed(secret) for secret, _ in held]),
        ),
    ]


def scheme_mismatch(
    *, hmacs: bool, ed25519s: bool, hmac_held: bool, public_held: bool
) -> str | None:
    """Why no secret held can check ``webhook-signature``'s entries (``hmacs``: it has ``v1``
    ones, ``ed25519s``: ``v1a`` ones) at all; None when one could."""
    if not hmacs and not ed25519s:
        return f"{_STANDARD} holds no v1 or v1a entry: nothing this verifier can check"
    if (hmacs and hmac_held) or (ed25519s and public_held):
        return None
    if hmacs:
        return (
            f"the request is signed with v1 (HMAC) only, and no {SECRET_PREFIX} secret is "
            "configured (a whpk_ key checks v1a, Ed25519): configure the sender's "
            f"{SECRET_PREFIX} secret"
        )
    return (
        "the request is signed with v1a (Ed25519) only, and no whpk_ or whsk_ key is "
        f"configured (a {SECRET_PREFIX} secret checks v1, HMAC): configure the sender's whpk_ "
        "public key"
    )


def reserialisations(body: bytes) -> Iterator[tuple[str, bytes]]:
    """The usual forms ``body`` had before a receiver changed it, each named, each once,
    none equal to ``body``."""
    seen = {body}
    for form, candidate in (*_byte_forms(body), *_json_forms(body)):
        if candidate not in seen:
            seen.add(candidate)
            yield form, candidate


def first_difference(given: bytes, signed: bytes) -> int:
    """The offset of the first byte where two bodies differ (the shorter's length when one
    is the start of the other)."""
    for offset, (a, b) in enumerate(zip(given, signed, strict=False)):
        if a != b:
            return offset
    return min(len(given), len(signed))


def excerpt(data: bytes, offset: int) -> str:
    """``EXCERPT_BYTES`` either side of ``offset``, escaped to one printable line, with
    ``…`` where it is cut."""
    start, end = max(0, offset - EXCERPT_BYTES), offset + EXCERPT_BYTES
    text = json.dumps(data[start:end].decode("utf-8", "backslashreplace"), ensure_ascii=False)
    return ("…" if start else "") + text[1:-1] + ("…" if end < len(data) else "")


def unlike_sent(body: bytes) -> str | None:
    """How ``body`` differs from what runback sends (compact UTF-8 JSON); None: it does not."""
    if not body:
        return "it is empty"
    if _parsed(body) is _UNPARSED:
        return "it is not UTF-8 JSON"
    # Whitespace between tokens, never inside strings: runback writes none (numbers may be
    # written otherwise than Python would, so the body is not compared with a dump of it).
    if _BLANK.search(_STRING.sub(b"", body)):
        return "it is JSON, but not compact: spaces or newlines were added between tokens"
    return None


def _reserialised(header: str, body: bytes, candidate: bytes, form: str) -> SignatureMismatchError:
    offset = first_difference(body, candidate)
    difference = BodyDifference(offset, excerpt(body, offset), excerpt(candidate, offset), form)
    return SignatureMismatchError(
        f"{header} holds for the body as {form}, not as received: the body was re-serialised "
        f"after it was signed; first difference at byte {offset}: received "
        f'"{difference.given}", signed "{difference.signed}"; verify the raw request body '
        "exactly as received, before any JSON parsing",
        cause=VerificationCause.BODY_RESERIALISED,
        difference=difference,
    )


_UNPARSED: Final = object()


def _unprefixed(secret: str) -> bytes:
    return secret.removeprefix(SECRET_PREFIX).encode()


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return _UNPARSED


def _dumps(value: Any, *, compact: bool, ascii: bool, sort: bool) -> bytes:
    separators = (",", ":") if compact else (", ", ": ")
    text = json.dumps(value, separators=separators, ensure_ascii=ascii, sort_keys=sort)
    return text.encode()


def _json_forms(body: bytes) -> Iterator[tuple[str, bytes]]:
    value = _parsed(body)
    if value is _UNPARSED:
        return
    for sort in (False, True):
        for compact in (True, False):
            for ascii in (False, True):
                form = "compact JSON" if compact else "JSON spaced after ',' and ':'"
                form += ", non-ASCII escaped" if ascii else ""
                form += ", keys sorted" if sort else ""
                try:
                    yield form, _dumps(value, compact=compact, ascii=ascii, sort=sort)
                except (ValueError, TypeError, RecursionError):  # keys of mixed kinds
                    return


def _byte_forms(body: bytes) -> Iterator[tuple[str, bytes]]:
    if body.startswith(_BOM):
        yield "without its byte order mark", body[len(_BOM) :]
    if body.endswith(b"\r\n"):
        yield "without its trailing CRLF", body[:-2]
    if body.endswith(b"\n"):
        yield "without its trailing newline", body[:-1]
    else:
        yield "with a trailing newline", body + b"\n"
    if b"\r\n" in body:
        yield "with CRLF line ends as LF", body.replace(b"\r\n", b"\n")
    elif b"\n" in body:
        yield "with LF line ends as CRLF", body.replace(b"\n", b"\r\n")
