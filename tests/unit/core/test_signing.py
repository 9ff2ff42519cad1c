"""Signing: the contract's test vector, and our headers checked by the reference verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from runback.core.signing import (
    generate_secret,
    runflow_signature,
    secret_key,
    signature_headers,
    standard_signature,
)
from runback.errors import InvalidSecretError, RunbackError

# The Standard Webhooks test vector, as CONTRACT.md §5 states it.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

OLD_SECRET = generate_secret(lambda n: bytes(range(n)))
NEW_SECRET = generate_secret(lambda n: bytes(range(100, 100 + n)))
STRANGER_SECRET = generate_secret(lambda n: b"\x07" * n)
BODY = '{"event":"run.completed","metadata":{"note":"café"}}'.encode()
MSG_ID = "msg_0193b7e48c1a7d2e9f3a1b2c3d4e5f60"


def _now_timestamp() -> int:
    # The reference verifier reads the wall clock and allows 5 minutes of skew.
    return int(datetime.now(UTC).timestamp())


def _reference_accepts(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except WebhookVerificationError:
        return False
    return True


def test_standard_signature_matches_the_contract_test_vector() -> None:
    signature = standard_signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)

    assert signature == VECTOR_SIGNATURE


def test_signature_headers_carry_the_test_vector_signature() -> None:
    headers = signature_headers(
        body=VECTOR_BODY,
        msg_id=VECTOR_ID,
        timestamp=VECTOR_TIMESTAMP,
        current=None,
        active=[VECTOR_SECRET],
    )

    assert headers == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": VECTOR_SIGNATURE,
    }


def test_reference_verifier_accepts_headers_signed_with_one_secret() -> None:
    headers = signature_headers(
        body=BODY,
        msg_id=MSG_ID,
        timestamp=_now_timestamp(),
        current=OLD_SECRET,
        active=[OLD_SECRET],
    )

    assert _reference_accepts(OLD_SECRET, BODY, headers)


@pytest.mark.parametrize(
    "receiver_secret",
    [
        OLD_SECRET,  # a receiver not yet told about the new secret
        NEW_SECRET,  # a receiver already switched to the new secret
    ],
)
def test_reference_verifier_accepts_either_secret_while_rotating(receiver_secret: str) -> None:
    headers = signature_headers(
        body=BODY,
        msg_id=MSG_ID,
        timestamp=_now_timestamp(),
        current=NEW_SECRET,
        active=[NEW_SECRET, OLD_SECRET],
    )

    assert _reference_accepts(receiver_secret, BODY, headers)


def test_reference_verifier_rejects_a_secret_that_did_not_sign() -> None:
    headers = signature_headers(
        body=BODY,
        msg_id=MSG_ID,
        timestamp=_now_timestamp(),
        current=NEW_SECRET,
        active=[NEW_SECRET, OLD_SECRET],
    )

    assert not _reference_accepts(STRANGER_SECRET, BODY, headers)


def test_webhook_signature_has_one_space_separated_entry_per_active_secret() -> None:
    headers = signature_headers(
        body=BODY, msg_id=MSG_ID, timestamp=1, current=NEW_SECRET, active=[NEW_SECRET, OLD_SECRET]
    )

    assert headers["webhook-signature"].split(" ") == [
        standard_signature(NEW_SECRET, MSG_ID, 1, BODY),
        standard_signature(OLD_SECRET, MSG_ID, 1, BODY),
    ]


def test_runflow_signature_is_64_lowercase_hex() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", runflow_signature(VECTOR_SECRET, BODY))


def test_runflow_signature_is_hmac_sha256_keyed_by_the_whole_secret_string() -> None:
    expected = hmac.new(VECTOR_SECRET.encode("utf-8"), BODY, hashlib.sha256).hexdigest()

    assert runflow_signature(VECTOR_SECRET, BODY) == expected


def test_runflow_signature_header_is_made_with_the_current_secret() -> None:
    headers = signature_headers(
        body=BODY, msg_id=MSG_ID, timestamp=1, current=NEW_SECRET, active=[NEW_SECRET, OLD_SECRET]
    )

    assert headers["Runflow-Signature"] == runflow_signature(NEW_SECRET, BODY)


def test_callbacks_without_a_secret_are_unsigned() -> None:
    headers = signature_headers(body=BODY, msg_id=MSG_ID, timestamp=1, current=None, active=[])

    assert headers == {"webhook-id": MSG_ID, "webhook-timestamp": "1"}


def test_generated_secret_is_whsec_and_standard_base64_of_32_bytes() -> None:
    secret = generate_secret()

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_generated_secret_asks_for_32_random_bytes() -> None:
    asked: list[int] = []

    def random_bytes(size: int) -> bytes:
        asked.append(size)
        return bytes(size)

    generate_secret(random_bytes)

    assert asked == [32]


def test_generated_secret_uses_the_standard_alphabet_with_plus_and_slash() -> None:
    # 0xfbefbe encodes as '++++' and 0xffff as '//8=' in standard (not URL-safe) base64.
    raw = b"\xfb\xef\xbe" * 10 + b"\xff\xff"

    secret = generate_secret(lambda size: raw)

    assert secret == "whsec_" + "+" * 40 + "//8="
    assert secret_key(secret) == raw


def test_secret_key_is_the_decoded_part_after_whsec() -> None:
    assert secret_key(VECTOR_SECRET) == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_not base64!",  # space and punctuation outside the alphabet
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",  # truncated: wrong padding
        "whsec_ab-_",  # URL-safe alphabet, not the standard one
        "whsec_café",  # non-ASCII
    ],
)
def test_secret_key_rejects_a_secret_that_is_not_standard_base64(secret: str) -> None:
    with pytest.raises(InvalidSecretError):
        secret_key(secret)


def test_invalid_secret_error_belongs_to_the_error_tree() -> None:
    assert issubclass(InvalidSecretError, RunbackError)


def test_signing_with_a_malformed_active_secret_raises_invalid_secret() -> None:
    with pytest.raises(InvalidSecretError):
        signature_headers(
            body=BODY, msg_id=MSG_ID, timestamp=1, current=None, active=["whsec_not base64!"]
        )


GOOD = runflow_signature(OLD_SECRET, BODY)
