"""Identifiers: time-ordered UUIDv7 ids, API key tokens and their stored hash."""

from __future__ import annotations

import hashlib
import re
import time
from uuid import UUID

from runback.core.ids import hash_api_key, new_api_key, new_id, visible_prefix, webhook_id


def test_new_id_is_a_version_7_uuid() -> None:
    assert new_id().version == 7


def test_new_ids_are_time_ordered() -> None:
    ids = [new_id() for _ in range(1000)]

    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_new_id_carries_the_current_unix_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000

    # UUIDv7: the top 48 bits are the Unix time in milliseconds.
    assert before <= made.int >> 80 <= after


def test_api_key_is_rb_and_256_random_bits_url_safe() -> None:
    # 32 bytes as unpadded URL-safe base64 are 43 characters.
    assert re.fullmatch(r"rb_[A-Za-z0-9_-]{43}", new_api_key())


def test_api_keys_differ() -> None:
    assert new_api_key() != new_api_key()


def test_api_key_hash_is_sha256_hex_of_the_token() -> None:
    # The FIPS 180-2 test vector for SHA-256("abc").
    assert hash_api_key("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_api_key_hash_is_64_lowercase_hex() -> None:
    token = new_api_key()

    assert hash_api_key(token) == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_api_key(token))


def test_visible_prefix_is_rb_and_eight_characters() -> None:
    token = "rb_ABCDEFGHijklmnop"

    assert visible_prefix(token) == "rb_ABCDEFGH"


def test_webhook_id_is_msg_and_the_subject_hex() -> None:
    subject = UUID("0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f60")

    assert webhook_id(subject) == "msg_0193b7e48c1a7d2e9f3a1b2c3d4e5f60"
