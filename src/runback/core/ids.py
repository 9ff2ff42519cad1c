"""Identifiers and API-key tokens.

Run, delivery and attempt ids are UUIDv7: time-ordered, so the newest-first lists and the
primary-key indexes stay cheap. API keys are 256-bit random tokens stored only as their
SHA-256: a token that strong needs no slow password hash, so authentication stays one index
lookup on the request path.
"""

from __future__ import annotations

import hashlib
import secrets
from uuid import UUID

from uuid_utils.compat import uuid7

API_KEY_PREFIX = "rb_"
_API_KEY_BYTES = 32
_VISIBLE_PREFIX_CHARS = 8


def new_id() -> UUID:
    """A new time-ordered UUID (version 7)."""
    return uuid7()


def new_api_key() -> str:
    """A new API key token, e.g. ``rb_Vq3...``; shown once, stored as its hash."""
    return API_KEY_PREFIX + secrets.token_urlsafe(_API_KEY_BYTES)


def hash_api_key(token: str) -> str:
    """The stored form of an API key: lowercase hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(token.encode()).hexdigest()


def visible_prefix(token: str) -> str:
    """The part of a token that may be shown again in lists, to tell keys apart."""
    return token[: len(API_KEY_PREFIX) + _VISIBLE_PREFIX_CHARS]


def webhook_id(event_subject: UUID) -> str:
    """The Standard Webhooks ``webhook-id`` of the callback about a run or batch.

    One subject reaches one terminal state, so every retry and every redelivery of its
    callback shares this id: receivers use it as their idempotency key.
    """
    return f"msg_{event_subject.hex}"
