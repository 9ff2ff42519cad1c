"""Ed25519 keys as Standard Webhooks writes them, for its asymmetric scheme (``v1a``).

* ``whpk_<base64>``: a public key, its 32 raw bytes in standard, padded base64.
* ``whsk_<base64>``: a private key, its 32-byte seed, or the seed followed by its public key
  (64 bytes, as libsodium keeps it), in standard base64. runback writes the seed alone.
* A JWK (RFC 8037): ``kty`` ``OKP``, ``crv`` ``Ed25519``, ``x`` the public key's raw bytes
  in base64url without padding.

Both sides use this one parser: the sender signs with ``whsk_`` keys, the receiver verifies
with ``whpk_`` (or ``whsk_``) keys. Ed25519 needs the ``cryptography`` package, imported only
when a key is loaded, so the light install (HMAC only) does without it. A private key is
loaded once per process: the dispatcher signs every attempt with it.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Final, TypedDict

from runback.errors import ConfigError, InvalidSecretError

if TYPE_CHECKING:
    from types import ModuleType

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

PUBLIC_KEY_PREFIX: Final = "whpk_"
PRIVATE_KEY_PREFIX: Final = "whsk_"
KEY_BYTES: Final = 32
_PREFIX_CHARS: Final = 10
# Enough for every active key of many organizations; an evicted key is only loaded again.
_CACHED_KEYS: Final = 4096


class Jwk(TypedDict):
    """One public key of a JWKS document (RFC 8037)."""

    kty: str
    crv: str
    x: str
    kid: str
    use: str
    alg: str


def generate_private_key(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A new private key: ``whsk_`` + standard base64 of a 32-byte seed."""
    return PRIVATE_KEY_PREFIX + base64.b64encode(random_bytes(KEY_BYTES)).decode()


def public_key_of(private_key: str) -> str:
    """The ``whpk_`` public key of a ``whsk_`` private key."""
    raw = load_public_key(private_key).public_bytes_raw()
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode()


def key_prefix(key: str) -> str:
    """The first characters of a key, prefix included: enough to tell keys apart."""
    return key[: key.find("_") + 1 + _PREFIX_CHARS]


def load_public_key(key: str, *, name: str = "the key") -> Ed25519PublicKey:
    """The Ed25519 public key of a ``whpk_`` key, or of a ``whsk_`` key's seed.

    A malformed key raises ``InvalidSecretError`` naming it as ``name`` (never quoting it);
    without ``cryptography``, ``ConfigError`` says what to install.
    """
    if key.startswith(PRIVATE_KEY_PREFIX):
        return load_private_key(key, name=name).public_key()
    raw = _decoded(key, PUBLIC_KEY_PREFIX, (KEY_BYTES,), name)
    try:
        public: Ed25519PublicKey = _ed25519().Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise InvalidSecretError(f"{name} ({PUBLIC_KEY_PREFIX}...) is no Ed25519 key") from exc
    return public


def load_private_key(key: str, *, name: str = "the key") -> Ed25519PrivateKey:
    """The Ed25519 private key of a ``whsk_`` key; loaded once, then kept."""
    return _private_key(key, name)


def sign(private_key: str, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``message`` with a ``whsk_`` key."""
    return load_private_key(private_key).sign(message)


def jwk(kid: str, public_key: str) -> Jwk:
    """A ``whpk_`` public key as a JWK, with its key id."""
    raw = _decoded(public_key, PUBLIC_KEY_PREFIX, (KEY_BYTES,), "the key")
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return Jwk(kty="OKP", crv="Ed25519", x=x, kid=kid, use="sig", alg="EdDSA")


@lru_cache(maxsize=_CACHED_KEYS)
def _private_key(key: str, name: str) -> Ed25519PrivateKey:
    raw = _decoded(key, PRIVATE_KEY_PREFIX, (KEY_BYTES, 2 * KEY_BYTES), name)
    private: Ed25519PrivateKey = _ed25519().Ed25519PrivateKey.from_private_bytes(raw[:KEY_BYTES])
    if len(raw) == 2 * KEY_BYTES and private.public_key().public_bytes_raw() != raw[KEY_BYTES:]:
        raise InvalidSecretError(
            f"{name} ({PRIVATE_KEY_PREFIX}...) holds 64 bytes whose second half is not the "
            "public key of the first (expected seed + public key)"
        )
    return private


def _decoded(key: str, prefix: str, sizes: tuple[int, ...], name: str) -> bytes:
    """The raw bytes after ``prefix``, of one of ``sizes``; ``InvalidSecretError`` else."""
    raw: bytes | None = None
    if key.startswith(prefix):
        try:
            raw = base64.b64decode(key.removeprefix(prefix), validate=True)
        except ValueError:  # binascii.Error, and non-ASCII text
            raw = None
    if raw is None or len(raw) not in sizes:
        raise InvalidSecretError(
            f"{name} ({prefix}...) is not {prefix} followed by standard base64 of "
            + " or ".join(f"{size} bytes" for size in sizes)
        )
    return raw


def _ed25519() -> ModuleType:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise ConfigError(
            "Ed25519 keys (whpk_, whsk_) need the 'cryptography' package: "
            "pip install 'runback[ed25519]'"
        ) from exc
    return ed25519
