"""Sealing secrets at rest: AES-256-GCM under a master key the operator holds.

A sealed value is text, so it fits the column the plain value lived in::

    sealed:v1:<key id>:<base64 of 12-byte nonce + ciphertext + 16-byte tag>

The key id names the master key that sealed it, so keys can rotate: ``MasterKeys`` holds one
current key, which seals, and older ones, which only open. The header and a caller-chosen
``context`` (the row a value belongs to) are authenticated with it: a sealed value altered,
or copied into another row, does not open. Values without the ``sealed:`` prefix are the
plain values stored before any master key was given; ``open_value`` passes them through.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runback.errors import ConfigError

SEALED_PREFIX = "sealed:v1:"
KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_SETTING = "RUNBACK_MASTER_KEYS"

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class MasterKey:
    """One master key: its id (stored with every value it seals) and its 32 bytes."""

    id: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.match(self.id):
            raise ConfigError(
                f"master key id {self.id!r} must be 1 to 32 letters, digits, '_', '.' or '-'"
            )
        if len(self.key) != KEY_BYTES:
            raise ConfigError(f"master key {self.id!r} must be {KEY_BYTES} bytes")

    @classmethod
    def parse(cls, spec: str) -> MasterKey:
        """A key written ``<id>:<standard base64 of 32 bytes>``."""
        key_id, colon, encoded = spec.strip().partition(":")
        if not colon:
            raise ConfigError("a master key must be written <id>:<base64 of 32 bytes>")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                f"master key {key_id!r} is not standard base64 after '<id>:'"
            ) from None
        return cls(key_id, key)


@dataclass(frozen=True, slots=True)
class MasterKeys:
    """The current key, which seals, and older keys, which only open (during a rotation)."""

    current: MasterKey
    older: tuple[MasterKey, ...] = ()

    def __post_init__(self) -> None:
        ids = [key.id for key in (self.current, *self.older)]
        repeated = sorted({key_id for key_id in ids if ids.count(key_id) > 1})
        if repeated:
            raise ConfigError(f"master key id {repeated[0]!r} is given twice")

    @classmethod
    def parse(cls, specs: Sequence[str]) -> MasterKeys:
        """Keys written ``<id>:<base64>``, the current one first."""
        if not specs:
            raise ConfigError(f"give at least one master key in {_SETTING}")
        first, *rest = (MasterKey.parse(spec) for spec in specs)
        return cls(first, tuple(rest))

    def key(self, key_id: str) -> MasterKey:
        """The key called ``key_id``; a ``ConfigError`` saying what to add if none is."""
        for key in (self.current, *self.older):
            if key.id == key_id:
                return key
        raise ConfigError(
            f"a secret is sealed with master key {key_id!r}, which is not given: add "
            f"'{key_id}:<its base64 key>' to {_SETTING} after the current key"
        )

    def seal(self, plain: str, *, context: str = "", random_bytes: RandomBytes = os.urandom) -> str:
        """``plain`` sealed with the current key, bound to ``context``."""
        key = self.current
        nonce = random_bytes(_NONCE_BYTES)
        sealed = AESGCM(key.key).encrypt(nonce, plain.encode(), _associated(key.id, context))
        return f"{SEALED_PREFIX}{key.id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, value: str, *, context: str = "") -> str:
        """The plain text of a sealed ``value``, which must have been sealed for ``context``."""
        key_id, raw = _split(value)
        key = self.key(key_id)
        try:
            plain = AESGCM(key.key).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _associated(key_id, context)
            )
            return plain.decode()
        except (InvalidTag, UnicodeDecodeError):
            raise ConfigError(
                f"a secret sealed with master key {key_id!r} does not open: it was altered, "
                f"or {key_id!r} in {_SETTING} is not the key that sealed it"
            ) from None

    def is_current(self, value: str) -> bool:
        """Whether ``value`` is sealed with the current key (else it needs sealing again)."""
        return sealed_key_id(value) == self.current.id


def sealed_key_id(value: str) -> str | None:
    """The id of the key that sealed ``value``; None for a plain value."""
    if not value.startswith(SEALED_PREFIX):
        return None
    key_id, _, _ = value.removeprefix(SEALED_PREFIX).partition(":")
    return key_id


def open_value(value: str, keys: MasterKeys | None, *, context: str = "") -> str:
    """A stored value in plain text: sealed ones opened, plain ones as they are."""
    key_id = sealed_key_id(value)
    if key_id is None:
        return value
    if keys is None:
        raise ConfigError(
            f"a secret is sealed with master key {key_id!r} but no master key is given: "
            f"set {_SETTING} to '{key_id}:<its base64 key>'"
        )
    return keys.open(value, context=context)


def generate_master_key(key_id: str, random_bytes: RandomBytes = os.urandom) -> str:
    """A new master key, written as ``RUNBACK_MASTER_KEYS`` takes it."""
    key = MasterKey(key_id, random_bytes(KEY_BYTES))
    return f"{key.id}:{base64.b64encode(key.key).decode()}"


def _associated(key_id: str, context: str) -> bytes:
    # The header and the context are authenticated: neither can be swapped undetected.
    return f"{SEALED_PREFIX}{key_id}:{context}".encode()


def _split(value: str) -> tuple[str, bytes]:
    """A sealed value's key id and raw bytes (nonce, ciphertext, tag)."""
    key_id = sealed_key_id(value)
    if key_id is None:
        raise ConfigError("the value is not sealed (no 'sealed:v1:' prefix)")
    encoded = value.removeprefix(f"{SEALED_PREFIX}{key_id}:")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) < _NONCE_BYTES + _TAG_BYTES:
        raise ConfigError(f"a secret sealed with master key {key_id!r} is truncated or garbled")
    return key_id, raw
