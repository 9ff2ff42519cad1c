"""Callback secrets and the two signature schemes runback sends.

* ``Runflow-Signature``: lowercase hex HMAC-SHA256 of the raw body, keyed with the UTF-8 bytes
  of the whole secret string (``whsec_`` prefix included).
* Standard Webhooks: ``webhook-signature: v1,<base64>`` over ``{id}.{timestamp}.{body}``, keyed
  with the base64-decoded part after ``whsec_``; one signature per active secret, space
  separated, so receivers holding either secret verify during a rotation.
* Standard Webhooks' asymmetric scheme: ``v1a,<base64>``, the Ed25519 signature of the same
  ``{id}.{timestamp}.{body}`` with a ``whsk_`` private key (``runback.core.keys``); one per
  active key, after the ``v1`` entries. ``Runflow-Signature`` stays HMAC only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from uuid import UUID

from runback.core import keys
from runback.core.ids import new_id
from runback.core.records import CallbackSecret, SecretType
from runback.errors import InvalidSecretError

SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 32
_KEY_PREFIX_CHARS = 10


def generate_secret(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A new secret: ``whsec_`` + standard base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(random_bytes(_SECRET_BYTES)).decode()


def new_callback_secret(
    organization_id: UUID,
    *,
    label: str | None,
    now: datetime,
    kind: SecretType = SecretType.HMAC,
) -> CallbackSecret:
    """A fresh secret of ``organization_id``, not current (an organization's first of its
    kind becomes current when stored). An HMAC secret's plain value is shown once, when it is
    made; an Ed25519 key's private half never is, its public half always is."""
    public: str | None = None
    if kind is SecretType.ED25519:
        plain = keys.generate_private_key()
        public = keys.public_key_of(plain)
        prefix = keys.key_prefix(public)
    else:
        plain = generate_secret()
        prefix = key_prefix(plain)
    return CallbackSecret(
        id=new_id(),
        organization_id=organization_id,
        label=label,
        secret=plain,
        key_prefix=prefix,
        is_current=False,
        disabled_at=None,
        last_used_at=None,
        created_at=now,
        updated_at=now,
        type=kind,
        public_key=public,
    )


def key_prefix(secret: str) -> str:
    """The part of a secret that may be shown again, to tell secrets apart."""
    return secret[: len(SECRET_PREFIX) + _KEY_PREFIX_CHARS]


def secret_key(secret: str) -> bytes:
    """The HMAC key of the Standard Webhooks scheme: the decoded part after ``whsec_``."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecretError(
            f"secret {key_prefix(secret)}... is not 'whsec_' followed by standard base64"
        ) from exc


def runflow_signature(secret: str, body: bytes) -> str:
    """The ``Runflow-Signature`` value: 64 lowercase hex characters."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One entry of ``webhook-signature``: ``v1,<base64>`` with a ``whsec_`` secret,
    ``v1a,<base64>`` with a ``whsk_`` private key."""
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    if secret.startswith(keys.PRIVATE_KEY_PREFIX):
        return "v1a," + base64.b64encode(keys.sign(secret, signed)).decode()
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    *,
    body: bytes,
    msg_id: str,
    timestamp: int,
    current: str | None,
    active: Sequence[str],
) -> dict[str, str]:
    """The headers of one attempt; without any secret only the id and timestamp (unsigned).

    ``current`` is a ``whsec_`` secret; ``active`` may mix ``whsec_`` secrets and ``whsk_``
    private keys: their ``v1`` entries come first, in order, then the ``v1a`` ones.
    """
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if current is not None:
        if not current.startswith(SECRET_PREFIX):
            raise InvalidSecretError("Runflow-Signature is signed with a whsec_ secret only")
        headers["Runflow-Signature"] = runflow_signature(current, body)
    if active:
        ordered = sorted(active, key=lambda secret: secret.startswith(keys.PRIVATE_KEY_PREFIX))
        headers["webhook-signature"] = " ".join(
            standard_signature(secret, msg_id, timestamp, body) for secret in ordered
        )
    return headers
