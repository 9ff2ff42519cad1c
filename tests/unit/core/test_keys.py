"""Ed25519 keys and ``v1a`` signatures, both directions checked against PyNaCl (libsodium),
an implementation independent of the ``cryptography`` package runback signs with."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from runback.core import keys
from runback.core.ids import new_id
from runback.core.records import SecretType
from runback.core.signing import (
    generate_secret,
    new_callback_secret,
    runflow_signature,
    signature_headers,
    standard_signature,
)
from runback.core.verification import Verifier
from runback.errors import InvalidSecretError, SignatureMismatchError

SEED = bytes(range(32))
PRIVATE = "whsk_" + base64.b64encode(SEED).decode()
OTHER_PRIVATE = keys.generate_private_key(lambda n: b"\x07" * n)
HMAC_SECRET = generate_secret(lambda n: bytes(range(100, 100 + n)))
BODY = '{"event":"run.completed","metadata":{"note":"café"}}'.encode()
MSG_ID = "msg_0193b7e48c1a7d2e9f3a1b2c3d4e5f60"
NOW = datetime(2026, 5, 6, 10, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
ORG = new_id()


def _signed(msg_id: str = MSG_ID, ts: int = TS, body: bytes = BODY) -> bytes:
    return b"%s.%d.%s" % (msg_id.encode(), ts, body)


def _v1a_entries(headers: dict[str, str]) -> list[bytes]:
    return [
        base64.b64decode(entry.removeprefix("v1a,"))
        for entry in headers["webhook-signature"].split(" ")
        if entry.startswith("v1a,")
    ]


def _nacl_accepts(public_key: str, signature: bytes, signed: bytes) -> bool:
    verify_key = VerifyKey(base64.b64decode(public_key.removeprefix("whpk_")))
    try:
        verify_key.verify(signed, signature)
    except BadSignatureError:
        return False
    return True


# --- the key formats -----------------------------------------------------------------------


def test_a_new_private_key_is_whsk_and_the_base64_of_a_32_byte_seed() -> None:
    key = keys.generate_private_key()

    assert key.startswith("whsk_")
    assert len(base64.b64decode(key.removeprefix("whsk_"), validate=True)) == 32


def test_the_public_key_is_the_one_libsodium_derives_from_the_seed() -> None:
    expected = bytes(SigningKey(SEED).verify_key)

    assert keys.public_key_of(PRIVATE) == "whpk_" + base64.b64encode(expected).decode()


def test_a_private_key_may_be_written_seed_and_public_key_as_libsodium_keeps_it() -> None:
    signing_key = SigningKey(SEED)
    seed_and_public = bytes(signing_key) + bytes(signing_key.verify_key)
    libsodium = "whsk_" + base64.b64encode(seed_and_public).decode()

    assert keys.public_key_of(libsodium) == keys.public_key_of(PRIVATE)


def test_a_private_key_is_loaded_once() -> None:
    assert keys.load_private_key(PRIVATE) is keys.load_private_key(PRIVATE)


def test_the_jwk_holds_the_raw_public_key_in_base64url_without_padding() -> None:
    public = keys.public_key_of(PRIVATE)

    jwk = keys.jwk("kid-1", public)

    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": jwk["x"],
        "kid": "kid-1",
        "use": "sig",
        "alg": "EdDSA",
    }
    assert "=" not in jwk["x"]
    raw = base64.urlsafe_b64decode(jwk["x"] + "=")
    assert raw == bytes(SigningKey(SEED).verify_key)


@pytest.mark.parametrize(
    "key",
    [
        "whsk_" + base64.b64encode(bytes(31)).decode(),  # a seed is 32 bytes
        "whsk_not base64!",  # outside the alphabet
        "whsk_" + base64.b64encode(bytes(64)).decode(),  # second half not the seed's public key
        "whpk_" + base64.b64encode(bytes(32)).decode(),  # a public key where a private one goes
    ],
)
def test_a_malformed_private_key_is_named_never_quoted(key: str) -> None:
    with pytest.raises(InvalidSecretError) as caught:
        keys.load_private_key(key, name="callback key 3")

    assert "callback key 3" in str(caught.value)
    assert key.split("_", 1)[1] not in str(caught.value)


def test_the_key_prefix_shows_the_prefix_and_ten_characters() -> None:
    public = keys.public_key_of(PRIVATE)

    assert keys.key_prefix(public) == public[:15]


# --- a new callback secret -----------------------------------------------------------------


def test_a_new_ed25519_secret_holds_the_private_key_and_shows_the_public_one() -> None:
    made = new_callback_secret(ORG, label="asym", now=NOW, kind=SecretType.ED25519)

    assert made.type is SecretType.ED25519
    assert made.secret.startswith("whsk_")
    assert made.public_key == keys.public_key_of(made.secret)
    assert made.key_prefix == made.public_key[:15]  # the public half: the private never shows


def test_a_new_secret_is_hmac_by_default() -> None:
    made = new_callback_secret(ORG, label=None, now=NOW)

    assert made.type is SecretType.HMAC
    assert made.secret.startswith("whsec_")
    assert made.public_key is None


# --- runback signs, libsodium verifies -----------------------------------------------------


def test_a_v1a_entry_is_the_ed25519_signature_of_id_timestamp_and_body() -> None:
    entry = standard_signature(PRIVATE, MSG_ID, TS, BODY)

    assert entry.startswith("v1a,")
    signature = base64.b64decode(entry.removeprefix("v1a,"), validate=True)
    assert _nacl_accepts(keys.public_key_of(PRIVATE), signature, _signed())
    # Ed25519 is deterministic: libsodium, given the same seed, signs the same bytes.
    assert signature == SigningKey(SEED).sign(_signed()).signature


def test_libsodium_refuses_the_v1a_signature_of_another_body() -> None:
    [signature] = _v1a_entries(
        signature_headers(body=BODY, msg_id=MSG_ID, timestamp=TS, current=None, active=[PRIVATE])
    )

    assert not _nacl_accepts(keys.public_key_of(PRIVATE), signature, _signed(body=BODY + b" "))
    assert not _nacl_accepts(keys.public_key_of(OTHER_PRIVATE), signature, _signed())


def test_every_active_key_signs_its_own_v1a_entry_after_the_v1_entries() -> None:
    headers = signature_headers(
        body=BODY,
        msg_id=MSG_ID,
        timestamp=TS,
        current=HMAC_SECRET,
        active=[PRIVATE, HMAC_SECRET, OTHER_PRIVATE],
    )

    assert headers["webhook-signature"].split(" ") == [
        standard_signature(HMAC_SECRET, MSG_ID, TS, BODY),
        standard_signature(PRIVATE, MSG_ID, TS, BODY),
        standard_signature(OTHER_PRIVATE, MSG_ID, TS, BODY),
    ]
    assert headers["Runflow-Signature"] == runflow_signature(HMAC_SECRET, BODY)


def test_without_ed25519_keys_the_headers_are_todays_byte_for_byte() -> None:
    headers = signature_headers(
        body=BODY, msg_id=MSG_ID, timestamp=TS, current=HMAC_SECRET, active=[HMAC_SECRET]
    )

    key = base64.b64decode(HMAC_SECRET.removeprefix("whsec_"))
    v1 = base64.b64encode(hmac.new(key, _signed(), hashlib.sha256).digest()).decode()
    assert list(headers.items()) == [
        ("webhook-id", MSG_ID),
        ("webhook-timestamp", str(TS)),
        ("Runflow-Signature", hmac.new(HMAC_SECRET.encode(), BODY, hashlib.sha256).hexdigest()),
        ("webhook-signature", "v1," + v1),
    ]


def test_an_ed25519_key_alone_signs_no_runflow_signature() -> None:
    headers = signature_headers(
        body=BODY, msg_id=MSG_ID, timestamp=TS, current=None, active=[PRIVATE]
    )

    assert "Runflow-Signature" not in headers
    assert headers["webhook-signature"].startswith("v1a,")


def test_runflow_signature_is_never_made_with_a_private_key() -> None:
    with pytest.raises(InvalidSecretError, match="whsec_"):
        signature_headers(body=BODY, msg_id=MSG_ID, timestamp=TS, current=PRIVATE, active=[])


# --- libsodium signs, runback's receiver verifies ------------------------------------------


def _nacl_headers(signing_key: SigningKey, body: bytes = BODY) -> dict[str, str]:
    signature = signing_key.sign(_signed(body=body)).signature
    return {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TS),
        "webhook-signature": "v1a," + base64.b64encode(signature).decode(),
    }


def _whpk(signing_key: SigningKey) -> str:
    return "whpk_" + base64.b64encode(bytes(signing_key.verify_key)).decode()


def test_the_receiver_accepts_a_libsodium_signature_given_its_public_key() -> None:
    sender = SigningKey.generate()

    verified = Verifier([_whpk(sender)]).verify(BODY, _nacl_headers(sender), now=NOW)

    assert (verified.scheme, verified.webhook_id, verified.timestamp) == ("v1a", MSG_ID, TS)
    assert verified.secret_prefix == _whpk(sender)[:15]


def test_the_receiver_refuses_a_libsodium_signature_made_with_another_key() -> None:
    sender, stranger = SigningKey.generate(), SigningKey.generate()

    with pytest.raises(SignatureMismatchError):
        Verifier([_whpk(stranger)]).verify(BODY, _nacl_headers(sender), now=NOW)


def test_the_receiver_refuses_a_tampered_body_signed_by_libsodium() -> None:
    sender = SigningKey.generate()
    headers = _nacl_headers(sender)

    with pytest.raises(SignatureMismatchError):
        Verifier([_whpk(sender)]).verify(BODY.replace(b"caf", b"CAF"), headers, now=NOW)
