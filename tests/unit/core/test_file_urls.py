"""Signed, expiring ``/files/...`` URLs: what signs them, and everything that breaks them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from runback.core.file_urls import FileUrlError, check_file_url, sign_file_url

SECRET = b"s" * 32
NOW = datetime(2026, 1, 1, tzinfo=UTC)
EXPIRES_AT = NOW + timedelta(hours=24)
KEY = "runs/0190/0000-abc.png"


@dataclass(frozen=True)
class Parsed:
    """What a server reads back from a URL: the unquoted key and the two query values."""

    path: str
    key: str
    expires: str
    signature: str


def parse(url: str) -> Parsed:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    [expires], [signature] = query["expires"], query["signature"]
    key = unquote(parts.path.removeprefix("/files/"))
    return Parsed(parts.path, key, expires, signature)


def sign(key: str = KEY, expires_at: datetime = EXPIRES_AT, base_url: str = "http://h") -> str:
    return sign_file_url(base_url=base_url, key=key, expires_at=expires_at, secret=SECRET)


def check(
    key: str = KEY,
    expires: str | None = None,
    signature: str | None = None,
    *,
    url: str | None = None,
    now: datetime = NOW,
    secret: bytes = SECRET,
) -> None:
    """``check_file_url`` on ``url``'s parts, each replaceable."""
    parsed = parse(url or sign())
    check_file_url(
        key=key,
        expires=parsed.expires if expires is None else expires,
        signature=parsed.signature if signature is None else signature,
        secret=secret,
        now=now,
    )


def test_a_signed_url_checks_on_its_own_key_and_query() -> None:
    parsed = parse(sign())

    check_file_url(
        key=parsed.key,
        expires=parsed.expires,
        signature=parsed.signature,
        secret=SECRET,
        now=NOW,
    )


def test_the_url_is_the_key_under_files_of_the_base_url_with_its_expiry_in_unix_seconds() -> None:
    url = sign(base_url="https://files.example/prefix/")

    assert url.startswith(f"https://files.example/prefix/files/{KEY}?expires=")
    assert parse(url).expires == str(int(EXPIRES_AT.timestamp()))


def test_an_expiry_between_seconds_is_rounded_down_to_the_second() -> None:
    url = sign(expires_at=EXPIRES_AT + timedelta(milliseconds=900))

    assert parse(url).expires == str(int(EXPIRES_AT.timestamp()))


def _flip_last(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


@pytest.mark.parametrize(
    ("key", "expires", "signature", "secret"),
    [
        ("runs/0190/0001-abc.png", None, None, SECRET),  # another key
        (KEY + "x", None, None, SECRET),  # the key with more after it
        ("", None, None, SECRET),  # no key at all
        (KEY, str(int(EXPIRES_AT.timestamp()) + 1), None, SECRET),  # a later expiry
        (KEY, str(int(EXPIRES_AT.timestamp()) - 1), None, SECRET),  # an earlier expiry
        (KEY, None, _flip_last(parse(sign()).signature), SECRET),  # one hex digit changed
        (KEY, None, parse(sign()).signature.upper(), SECRET),  # the same digits in upper case
        (KEY, None, parse(sign()).signature[:-2], SECRET),  # a truncated signature
        (KEY, None, None, b"another secret"),  # signed by another runback
    ],
)
def test_an_altered_url_is_refused(
    key: str, expires: str | None, signature: str | None, secret: bytes
) -> None:
    with pytest.raises(FileUrlError, match="signature does not match"):
        check(key, expires, signature, secret=secret)


@pytest.mark.parametrize(
    ("expires", "signature"),
    [
        (None, "ab" * 32),  # no expiry
        ("1767225600", None),  # no signature
        (None, None),  # neither
    ],
)
def test_a_url_missing_its_expiry_or_signature_is_refused_as_unsigned(
    expires: str | None, signature: str | None
) -> None:
    with pytest.raises(FileUrlError, match="not signed"):
        check_file_url(key=KEY, expires=expires, signature=signature, secret=SECRET, now=NOW)


@pytest.mark.parametrize(
    ("expires", "signature"),
    [
        ("", "ab" * 32),  # an empty expiry
        ("-1", "ab" * 32),  # a negative expiry
        ("1e9", "ab" * 32),  # not a whole number
        (" 1767225600", "ab" * 32),  # padded
        ("\u00b2", "ab" * 32),  # a superscript two: str.isdigit() says yes, int() says no
        ("\u0663", "ab" * 32),  # an Arabic-Indic three: a digit, but not ASCII
        ("9" * 5000, "ab" * 32),  # past int()'s 4300-digit limit
        ("1767225600", "\u00e9" * 64),  # non-ASCII, which hmac.compare_digest() refuses
        ("1767225600", ""),  # an empty signature
    ],
)
def test_unreadable_query_text_is_refused_with_file_url_error(expires: str, signature: str) -> None:
    with pytest.raises(FileUrlError):
        check_file_url(key=KEY, expires=expires, signature=signature, secret=SECRET, now=NOW)


@pytest.mark.parametrize(
    ("now", "valid"),
    [
        (NOW, True),  # long before
        (EXPIRES_AT - timedelta(seconds=1), True),  # the last whole second
        (EXPIRES_AT - timedelta(microseconds=1), True),  # the last instant
        (EXPIRES_AT, False),  # the expiry itself is already too late
        (EXPIRES_AT + timedelta(days=1), False),  # long after
    ],
)
def test_a_url_is_valid_strictly_before_its_expiry(now: datetime, valid: bool) -> None:
    if valid:
        check(now=now)
    else:
        with pytest.raises(FileUrlError, match="expired"):
            check(now=now)


@pytest.mark.parametrize(
    "key",
    [
        "runs/1/my photo.png",  # a space
        "runs/1/café ☕.png",  # non-ASCII letters and a symbol
        "runs/1/a?b#c&d=e%20.png",  # characters that mean something in a URL
        "runs/1/deeper/still/x.png",  # slashes stay path separators
    ],
)
def test_an_odd_key_is_quoted_in_the_url_and_checked_unquoted(key: str) -> None:
    url = sign(key=key)
    parsed = parse(url)

    assert parsed.path.isascii()
    assert " " not in url
    assert parsed.key == key
    check(key=parsed.key, url=url)
