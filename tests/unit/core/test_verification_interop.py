"""Interop: ``v1`` both ways with the reference packages, ``v1a`` with Ed25519 primitives.

The ``standardwebhooks`` and ``svix`` packages sign and verify ``v1`` only; ``v1a`` is checked
against ``cryptography``'s Ed25519 and the spec's ``whpk_``/``whsk_`` key forms.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import standardwebhooks.webhooks as standard
import svix.webhooks as svix
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runback.core.signing import generate_secret, signature_headers
from runback.core.verification import verify
from runback.errors import SignatureMismatchError

SECRET = generate_secret(lambda n: bytes(range(n)))
OTHER_SECRET = generate_secret(lambda n: bytes(range(50, 50 + n)))
BODY = '{"event":"run.completed","metadata":{"note":"café"}}'.encode()
MSG_ID = "msg_0193b7e48c1a7d2e9f3a1b2c3d4e5f60"
NOW = datetime(2026, 5, 6, 10, 0, tzinfo=UTC)
TS = int(NOW.timestamp())

SEED = bytes(range(7, 39))
PRIVATE_KEY = Ed25519PrivateKey.from_private_bytes(SEED)
PUBLIC_BYTES = PRIVATE_KEY.public_key().public_bytes_raw()
WHPK = "whpk_" + base64.b64encode(PUBLIC_BYTES).decode()
WHSK_SEED = "whsk_" + base64.b64encode(SEED).decode()
WHSK_FULL = "whsk_" + base64.b64encode(SEED + PUBLIC_BYTES).decode()
OTHER_WHPK = (
    "whpk_"
    + base64.b64encode(
        Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key().public_bytes_raw()
    ).decode()
)


def _headers(signature: str, *, msg_id: str = MSG_ID, ts: int = TS) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def _v1a(body: bytes = BODY, *, key: Ed25519PrivateKey = PRIVATE_KEY) -> str:
    signed = f"{MSG_ID}.{TS}.".encode() + body
    return "v1a," + base64.b64encode(key.sign(signed)).decode()


def _flip_first_bit(entry: str) -> str:
    raw = bytearray(base64.b64decode(entry.removeprefix("v1a,")))
    raw[0] ^= 1
    return "v1a," + base64.b64encode(raw).decode()


def _wall_clock_now() -> int:
    # The reference verifiers read the wall clock and allow 5 minutes of skew.
    return int(datetime.now(UTC).timestamp())


# --- theirs -> ours ------------------------------------------------------------------------


def test_a_v1_signature_made_by_standardwebhooks_verifies_with_ours() -> None:
    signature = standard.Webhook(SECRET).sign(MSG_ID, NOW, BODY.decode())

    verified = verify(BODY, _headers(signature), [SECRET], now=NOW)

    assert (verified.scheme, verified.webhook_id, verified.timestamp) == ("v1", MSG_ID, TS)


def test_a_v1_signature_made_by_svix_verifies_with_ours() -> None:
    signature = svix.Webhook(SECRET).sign(MSG_ID, NOW, BODY.decode())

    verified = verify(BODY, _headers(signature), [SECRET], now=NOW)

    assert (verified.scheme, verified.webhook_id, verified.timestamp) == ("v1", MSG_ID, TS)


def test_a_standardwebhooks_signature_with_another_secret_is_a_mismatch() -> None:
    signature = standard.Webhook(OTHER_SECRET).sign(MSG_ID, NOW, BODY.decode())

    with pytest.raises(SignatureMismatchError):
        verify(BODY, _headers(signature), [SECRET], now=NOW)


# --- ours -> theirs ------------------------------------------------------------------------


def _runback_headers(*active: str) -> dict[str, str]:
    return signature_headers(
        body=BODY, msg_id=MSG_ID, timestamp=_wall_clock_now(), current=active[0], active=active
    )


@pytest.mark.parametrize(
    "receiver_secret",
    [
        SECRET,  # the secret that signs alone
        OTHER_SECRET,  # the second of two while rotating
    ],
)
def test_runback_headers_verify_with_standardwebhooks(receiver_secret: str) -> None:
    headers = _runback_headers(SECRET, OTHER_SECRET)

    standard.Webhook(receiver_secret).verify(BODY, headers, json_parse=False)


@pytest.mark.parametrize(
    "receiver_secret",
    [
        SECRET,  # the secret that signs alone
        OTHER_SECRET,  # the second of two while rotating
    ],
)
def test_runback_headers_verify_with_svix(receiver_secret: str) -> None:
    headers = _runback_headers(SECRET, OTHER_SECRET)

    svix.Webhook(receiver_secret).verify(BODY, headers)


def test_runback_headers_signed_by_another_secret_fail_with_svix() -> None:
    headers = _runback_headers(OTHER_SECRET)

    with pytest.raises(svix.WebhookVerificationError):
        svix.Webhook(SECRET).verify(BODY, headers)


# --- v1a: Ed25519 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        WHPK,  # the public key, as a receiver holds it
        WHSK_SEED,  # the private key as its 32-byte seed
        WHSK_FULL,  # the private key as seed + public key (64 bytes, libsodium's form)
    ],
)
def test_a_v1a_signature_verifies_with_each_key_form(key: str) -> None:
    verified = verify(BODY, _headers(_v1a()), [key], now=NOW)

    assert verified.scheme == "v1a"
    assert verified.secret_prefix == key[:15]


@pytest.mark.parametrize(
    ("body", "signature"),
    [
        (BODY + b" ", _v1a()),  # the body changed by one byte
        (BODY, _v1a(key=Ed25519PrivateKey.from_private_bytes(bytes(32)))),  # another key signed
        (BODY, "v1a," + base64.b64encode(bytes(64)).decode()),  # 64 zero bytes
        (BODY, _flip_first_bit(_v1a())),  # one bit of the signature flipped
    ],
)
def test_a_tampered_v1a_is_a_mismatch(body: bytes, signature: str) -> None:
    with pytest.raises(SignatureMismatchError):
        verify(body, _headers(signature), [WHPK], now=NOW)


def test_a_v1a_signature_from_an_unknown_key_is_a_mismatch() -> None:
    with pytest.raises(SignatureMismatchError):
        verify(BODY, _headers(_v1a()), [OTHER_WHPK], now=NOW)


@pytest.mark.parametrize(
    ("held", "scheme"),
    [
        ([WHPK], "v1a"),  # an Ed25519 receiver reads the v1a entry
        ([SECRET], "v1"),  # an HMAC receiver reads the v1 entry
        ([OTHER_WHPK, SECRET], "v1"),  # any held key matching is enough
    ],
)
def test_a_header_with_v1_and_v1a_entries_verifies_with_either_kind_of_key(
    held: list[str], scheme: str
) -> None:
    v1 = signature_headers(body=BODY, msg_id=MSG_ID, timestamp=TS, current=None, active=[SECRET])
    headers = _headers(f"{v1['webhook-signature']} {_v1a()}")

    assert verify(BODY, headers, held, now=NOW).scheme == scheme
