"""Verification: the contract's vector, both schemes, rotation, tolerance, and total parsing."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from runback.core.signing import (
    generate_secret,
    runflow_signature,
    signature_headers,
    standard_signature,
)
from runback.core.verification import Verified, Verifier, verify
from runback.errors import (
    ConfigError,
    InvalidSecretError,
    MalformedSignatureError,
    MissingSignatureError,
    RunbackError,
    SignatureMismatchError,
    TimestampOutsideToleranceError,
    VerificationError,
)

# The Standard Webhooks test vector, as CONTRACT.md §5 states it.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

OLD_SECRET = generate_secret(lambda n: bytes(range(n)))
NEW_SECRET = generate_secret(lambda n: bytes(range(100, 100 + n)))
STRANGER_SECRET = generate_secret(lambda n: b"\x07" * n)
BODY = '{"event":"run.completed","run_id":"0193b7e4","metadata":{"note":"café"}}'.encode()
MSG_ID = "msg_0193b7e48c1a7d2e9f3a1b2c3d4e5f60"
NOW = datetime(2026, 5, 6, 10, 0, tzinfo=UTC)
TS = int(NOW.timestamp())


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _standard(
    body: bytes = BODY, *, secrets: tuple[str, ...] = (OLD_SECRET,), ts: int = TS
) -> dict[str, str]:
    """Standard Webhooks headers only, as runback signs them."""
    return signature_headers(body=body, msg_id=MSG_ID, timestamp=ts, current=None, active=secrets)


def _runflow(body: bytes = BODY, secret: str = OLD_SECRET) -> dict[str, str]:
    return {"Runflow-Signature": runflow_signature(secret, body)}


def _replace(headers: dict[str, str], name: str, value: str | None) -> dict[str, str]:
    changed = {key: val for key, val in headers.items() if key != name}
    return changed if value is None else {**changed, name: value}


# --- what verifies -------------------------------------------------------------------------


def test_contract_test_vector_verifies_as_v1() -> None:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }

    verified = verify(
        VECTOR_BODY,
        headers,
        [VECTOR_SECRET],
        now=datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC),
    )

    assert verified == Verified(
        scheme="v1",
        webhook_id=VECTOR_ID,
        timestamp=VECTOR_TIMESTAMP,
        secret_prefix="whsec_MfKQ9r8GKY",
    )


def test_runflow_signature_of_the_raw_body_verifies() -> None:
    verified = verify(BODY, _runflow(), [OLD_SECRET], now=NOW)

    assert verified == Verified("runflow", None, None, OLD_SECRET[:16])


def test_headers_that_runback_sends_verify_as_standard_webhooks() -> None:
    headers = signature_headers(
        body=BODY, msg_id=MSG_ID, timestamp=TS, current=OLD_SECRET, active=[OLD_SECRET]
    )

    assert verify(BODY, headers, [OLD_SECRET], now=NOW).scheme == "v1"


def test_matching_secret_is_shown_by_its_prefix_only() -> None:
    verified = verify(BODY, _standard(), [OLD_SECRET], now=NOW)

    assert verified.secret_prefix == OLD_SECRET[:16]
    assert verified.secret_prefix != OLD_SECRET


@pytest.mark.parametrize(
    "rename",
    [
        str.lower,  # as HTTP/2 and ASGI servers deliver them
        str.upper,  # as some proxies rewrite them
        str.title,  # as WSGI servers and Django's request.headers spell them
    ],
)
def test_header_names_are_case_insensitive(rename: Callable[[str], str]) -> None:
    headers = {rename(name): value for name, value in {**_standard(), **_runflow()}.items()}

    assert verify(BODY, headers, [OLD_SECRET], now=NOW).scheme == "v1"


def test_headers_may_be_given_as_name_value_pairs() -> None:
    pairs = [("Content-Type", "application/json"), *_runflow().items()]

    assert verify(BODY, pairs, [OLD_SECRET], now=NOW).scheme == "runflow"


def test_a_lone_string_counts_as_one_secret() -> None:
    assert verify(BODY, _runflow(), OLD_SECRET, now=NOW).scheme == "runflow"


def test_verifier_and_verify_agree() -> None:
    verifier = Verifier([OLD_SECRET])

    assert verifier.verify(BODY, _standard(), now=NOW) == verify(
        BODY, _standard(), [OLD_SECRET], now=NOW
    )


def test_verified_is_frozen() -> None:
    verified = verify(BODY, _runflow(), [OLD_SECRET], now=NOW)

    with pytest.raises(dataclasses.FrozenInstanceError):
        verified.scheme = "v1"  # type: ignore[misc]


def test_unknown_signature_versions_are_skipped() -> None:
    good = standard_signature(OLD_SECRET, MSG_ID, TS, BODY)
    headers = _replace(_standard(), "webhook-signature", f"v2,whatever v0,AAAA {good}")

    assert verify(BODY, headers, [OLD_SECRET], now=NOW).scheme == "v1"


def test_standard_headers_decide_even_when_runflow_signature_is_valid() -> None:
    forged = _standard(secrets=(STRANGER_SECRET,)) | _runflow()

    with pytest.raises(SignatureMismatchError):
        verify(BODY, forged, [OLD_SECRET], now=NOW)


# --- rotation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "held",
    [
        [OLD_SECRET],  # a receiver not yet told about the new secret
        [NEW_SECRET],  # a receiver already switched to the new secret
        [STRANGER_SECRET, NEW_SECRET],  # any one of several held secrets is enough
    ],
)
def test_during_a_rotation_either_secret_verifies_standard_headers(held: list[str]) -> None:
    headers = _standard(secrets=(NEW_SECRET, OLD_SECRET))

    assert verify(BODY, headers, held, now=NOW).scheme == "v1"


@pytest.mark.parametrize(
    "signer",
    [
        OLD_SECRET,  # the sender still signs with the old secret
        NEW_SECRET,  # the sender promoted the new one
    ],
)
def test_a_receiver_holding_both_secrets_verifies_either_runflow_signature(signer: str) -> None:
    verified = verify(BODY, _runflow(secret=signer), [OLD_SECRET, NEW_SECRET], now=NOW)

    assert verified.secret_prefix == signer[:16]


def test_standard_verified_names_the_secret_that_matched() -> None:
    verified = verify(BODY, _standard(secrets=(NEW_SECRET,)), [OLD_SECRET, NEW_SECRET], now=NOW)

    assert verified.secret_prefix == NEW_SECRET[:16]


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset",
    [
        0,  # signed just now
        -300,  # exactly 5 minutes old: the boundary is inside
        300,  # exactly 5 minutes ahead (the sender's clock is fast)
    ],
)
def test_timestamps_within_the_tolerance_verify(offset: int) -> None:
    assert verify(BODY, _standard(ts=TS + offset), [OLD_SECRET], now=NOW).timestamp == TS + offset


@pytest.mark.parametrize(
    ("offset", "words"),
    [
        (-301, "301 s in the past"),  # one second too old: stale or replayed
        (301, "301 s in the future"),  # one second too far ahead: a skewed clock
        (-86400, "86400 s in the past"),  # a day old
    ],
)
def test_timestamps_beyond_the_tolerance_are_refused(offset: int, words: str) -> None:
    with pytest.raises(TimestampOutsideToleranceError) as caught:
        verify(BODY, _standard(ts=TS + offset), [OLD_SECRET], now=NOW)

    assert words in str(caught.value)
    assert "tolerance of 300 s" in str(caught.value)
    assert ("replayed" in str(caught.value)) is (offset < 0)
    assert caught.value.cause == ("timestamp_stale" if offset < 0 else "timestamp_future")


def test_tolerance_is_configurable() -> None:
    headers = _standard(ts=TS - 3600)

    assert verify(BODY, headers, [OLD_SECRET], tolerance=timedelta(hours=1), now=NOW).scheme == "v1"
    with pytest.raises(TimestampOutsideToleranceError):
        verify(BODY, headers, [OLD_SECRET], tolerance=timedelta(minutes=59), now=NOW)


def test_now_defaults_to_the_real_clock() -> None:
    ts = int(datetime.now(UTC).timestamp())

    assert verify(BODY, _standard(ts=ts), [OLD_SECRET]).timestamp == ts


def test_a_forged_stale_request_is_a_mismatch_not_a_timestamp_error() -> None:
    # Signatures are checked first: a timestamp error always means a genuine request.
    headers = _standard(ts=TS - 86400, secrets=(STRANGER_SECRET,))

    with pytest.raises(SignatureMismatchError):
        verify(BODY, headers, [OLD_SECRET], now=NOW)


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(BODY, _standard(), [OLD_SECRET], now=NOW.replace(tzinfo=None))


# --- require_standard ----------------------------------------------------------------------


def test_require_standard_refuses_a_request_with_only_runflow_signature() -> None:
    with pytest.raises(MissingSignatureError) as caught:
        verify(BODY, _runflow(), [OLD_SECRET], require_standard=True, now=NOW)

    assert "replayed" in str(caught.value)


def test_require_standard_accepts_standard_headers() -> None:
    headers = _standard() | _runflow()

    assert verify(BODY, headers, [OLD_SECRET], require_standard=True, now=NOW).scheme == "v1"


# --- the raw body --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        _runflow(),  # Runflow-Signature
        _standard(),  # Standard Webhooks v1
    ],
)
def test_re_serialised_json_is_a_mismatch_that_names_the_raw_body(headers: dict[str, str]) -> None:
    reserialised = json.dumps(json.loads(BODY)).encode()  # ", " and ": " separators, \u00e9

    with pytest.raises(SignatureMismatchError) as caught:
        verify(reserialised, headers, [OLD_SECRET], now=NOW)

    assert "raw request body" in str(caught.value)
    assert caught.value.cause == "body_reserialised"


def test_body_must_be_bytes() -> None:
    with pytest.raises(TypeError, match="raw request body as bytes"):
        verify(BODY.decode(), _runflow(), [OLD_SECRET], now=NOW)  # type: ignore[arg-type]


# --- every failure raises exactly its documented error -------------------------------------

GOOD = _standard()
GOOD_RUNFLOW = runflow_signature(OLD_SECRET, BODY)
HUGE = "A" * 1_000_000


def _sig(value: str) -> dict[str, str]:
    return _replace(GOOD, "webhook-signature", value)


def _ts(value: str) -> dict[str, str]:
    return _replace(GOOD, "webhook-timestamp", value)


def _id(value: str) -> dict[str, str]:
    return _replace(GOOD, "webhook-id", value)


def _rf(value: str) -> dict[str, str]:
    return {"Runflow-Signature": value}


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        # -- missing
        (BODY, {}, MissingSignatureError),  # nothing at all
        # id and timestamp alone: what runback sends while the user has no secret
        (BODY, _replace(GOOD, "webhook-signature", None), MissingSignatureError),
        (BODY, _replace(GOOD, "webhook-id", None), MissingSignatureError),  # signature, no id
        (BODY, _replace(GOOD, "webhook-timestamp", None), MissingSignatureError),  # no timestamp
        # -- Runflow-Signature that does not parse
        (BODY, _rf(GOOD_RUNFLOW.upper()), MalformedSignatureError),  # uppercase hex
        (BODY, _rf(GOOD_RUNFLOW[:-1]), MalformedSignatureError),  # 63 characters
        (BODY, _rf(GOOD_RUNFLOW + "0"), MalformedSignatureError),  # 65 characters
        (BODY, _rf(""), MalformedSignatureError),  # empty
        (BODY, _rf("sha256=" + GOOD_RUNFLOW), MalformedSignatureError),  # a prefix
        (BODY, _rf(GOOD_RUNFLOW + "\n"), MalformedSignatureError),  # a `$` regex would pass it
        (BODY, _rf("é" * 64), MalformedSignatureError),  # non-ASCII
        (BODY, _rf(HUGE), MalformedSignatureError),  # a megabyte
        # -- webhook-signature that does not parse
        (BODY, _sig("garbage"), MalformedSignatureError),  # no comma
        (BODY, _sig(",AAAA"), MalformedSignatureError),  # no version
        (BODY, _sig(""), MalformedSignatureError),  # empty
        (BODY, _sig("   "), MalformedSignatureError),  # blank
        (BODY, _sig("v1,"), MalformedSignatureError),  # no signature after the comma
        # two commas: the reference verifier's `version, sig = split(",")` raises ValueError
        (BODY, _sig("v1,a,b"), MalformedSignatureError),
        (BODY, _sig("v1,!!!!"), MalformedSignatureError),  # outside the base64 alphabet
        (BODY, _sig("v1," + "-_" * 22), MalformedSignatureError),  # URL-safe alphabet
        (BODY, _sig(GOOD["webhook-signature"].rstrip("=")), MalformedSignatureError),  # unpadded
        (BODY, _sig("v1," + _b64(bytes(31))), MalformedSignatureError),  # 31 bytes: no SHA-256
        (BODY, _sig("v1a," + _b64(bytes(32))), MalformedSignatureError),  # 32: no Ed25519 sig
        (BODY, _sig("v1,ééééé"), MalformedSignatureError),  # non-ASCII
        (BODY, _sig(" ".join(["v1,AAAA"] * 33)), MalformedSignatureError),  # 33 entries
        (BODY, _sig("v1," + HUGE), MalformedSignatureError),  # a megabyte
        # -- webhook-timestamp that does not parse
        (BODY, _ts("yesterday"), MalformedSignatureError),  # words
        (BODY, _ts(""), MalformedSignatureError),  # empty
        (BODY, _ts("-1"), MalformedSignatureError),  # negative
        (BODY, _ts(f"{TS}.5"), MalformedSignatureError),  # fractional
        (BODY, _ts("1e9"), MalformedSignatureError),  # an exponent
        (BODY, _ts("1_778_061_600"), MalformedSignatureError),  # underscores: int() takes them
        (BODY, _ts("١٧٧٨٠٦١٦٠٠"), MalformedSignatureError),  # Arabic-Indic digits: int() too
        (BODY, _ts("9" * 5000), MalformedSignatureError),  # past int()'s 4300-digit limit
        # -- webhook-id that does not parse
        (BODY, _id(""), MalformedSignatureError),  # empty
        (BODY, _id("msg 1"), MalformedSignatureError),  # a space
        (BODY, _id("msg_é"), MalformedSignatureError),  # non-ASCII
        # a lone surrogate (surrogateescape's raw byte): .encode() would raise UnicodeError
        (BODY, _id("msg_\udcff"), MalformedSignatureError),
        (BODY, _id("m" * 257), MalformedSignatureError),  # too long
        # -- the same header twice: which one counts would be ambiguous
        (BODY, [*GOOD.items(), ("Webhook-Signature", "v1,AAAA")], MalformedSignatureError),
        # -- well formed, but no secret matches
        (b"", GOOD, SignatureMismatchError),  # empty body
        (BODY + b"\n", GOOD, SignatureMismatchError),  # one byte more
        (b"", _runflow(), SignatureMismatchError),  # empty body, Runflow-Signature
        (BODY, _standard(secrets=(STRANGER_SECRET,)), SignatureMismatchError),  # wrong secret
        (BODY, _runflow(secret=STRANGER_SECRET), SignatureMismatchError),  # wrong secret
        (BODY, _id("msg_other"), SignatureMismatchError),  # the id is signed
        (BODY, _ts(str(TS + 1)), SignatureMismatchError),  # the timestamp is signed
        (BODY, _sig("v2,AAAA"), SignatureMismatchError),  # only unknown versions
        (BODY, _sig("v1a," + _b64(bytes(64))), SignatureMismatchError),  # v1a, no Ed25519 key
    ],
)
def test_each_failure_raises_exactly_its_documented_error(
    body: bytes, headers: dict[str, str] | list[tuple[str, str]], expected: type[Exception]
) -> None:
    with pytest.raises(VerificationError) as caught:
        verify(body, headers, [OLD_SECRET], now=NOW)

    assert type(caught.value) is expected
    assert len(str(caught.value)) < 500  # header values are described, never echoed


@pytest.mark.parametrize(
    ("headers", "header", "form"),
    [
        (_rf("ABC"), "Runflow-Signature", "64 lowercase hex"),
        (_sig("nope"), "webhook-signature", "'v1,<base64>'"),
        (_ts("soon"), "webhook-timestamp", "unix seconds"),
        (_id(""), "webhook-id", "printable ASCII"),
    ],
)
def test_malformed_error_names_the_header_and_the_form_expected(
    headers: dict[str, str], header: str, form: str
) -> None:
    with pytest.raises(MalformedSignatureError) as caught:
        verify(BODY, headers, [OLD_SECRET], now=NOW)

    assert caught.value.header == header
    assert header in str(caught.value)
    assert form in str(caught.value)


def test_no_ed25519_key_held_for_a_v1a_only_request_says_so() -> None:
    headers = _replace(GOOD, "webhook-signature", "v1a," + _b64(bytes(64)))

    with pytest.raises(SignatureMismatchError, match="no whpk_ or whsk_ key is configured") as c:
        verify(BODY, headers, [OLD_SECRET], now=NOW)

    assert c.value.cause == "scheme_mismatch"


# --- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_not base64!",  # punctuation outside the alphabet
        "whsec_",  # nothing after the prefix
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",  # truncated: wrong padding
        "whsec_café",  # non-ASCII
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # the prefix left off
        "whpk_" + _b64(bytes(31)),  # an Ed25519 public key is 32 bytes
        "whpk_not-base64",  # URL-safe alphabet
        "whsk_" + _b64(bytes(48)),  # a private key is a 32-byte seed or seed + public key
        "whsk_" + _b64(bytes(64)),  # 64 bytes whose second half is not the seed's public key
    ],
)
def test_a_malformed_secret_is_named_by_position_never_by_content(secret: str) -> None:
    with pytest.raises(InvalidSecretError) as caught:
        Verifier([OLD_SECRET, secret])

    content = secret.split("_", 1)[-1]
    assert "secret 2" in str(caught.value)
    assert not content or content not in str(caught.value)


def test_invalid_secret_error_belongs_to_the_error_tree() -> None:
    assert issubclass(InvalidSecretError, RunbackError)


def test_a_verifier_needs_a_secret() -> None:
    with pytest.raises(ConfigError):
        Verifier([])


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(ConfigError):
        Verifier([OLD_SECRET], tolerance=timedelta(seconds=-1))


# --- the errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        MissingSignatureError,
        MalformedSignatureError,
        SignatureMismatchError,
        TimestampOutsideToleranceError,
    ],
)
def test_every_failure_is_a_401_verification_error(error: type[VerificationError]) -> None:
    assert issubclass(error, VerificationError)
    assert issubclass(error, RunbackError)
    assert error.status_code == 401
    assert error.code == "INVALID_SIGNATURE"


def test_verification_error_envelope_is_the_contracts() -> None:
    error = SignatureMismatchError("no secret matches")

    assert error.envelope() == {
        "code": "INVALID_SIGNATURE",
        "message": "no secret matches",
        "errors": None,
    }
