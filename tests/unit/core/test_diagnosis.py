"""Why a callback failed verification: one row per cause, and the search behind a mismatch."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from runback.core.diagnosis import (
    MAX_DIAGNOSED_BODY,
    diagnose_mismatch,
    excerpt,
    first_difference,
    reserialisations,
    unlike_sent,
)
from runback.core.keys import generate_private_key, public_key_of
from runback.core.signing import runflow_signature, secret_key, signature_headers
from runback.core.verification import verify
from runback.errors import SignatureMismatchError, VerificationCause, VerificationError
from support.verify_cases import BODY, CASES, MSG_ID, NOW, SECRET, TS, Case, signed


def test_every_cause_has_its_row() -> None:
    assert set(CASES) == {"valid", *VerificationCause}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_failure_says_its_cause(name: str) -> None:
    case: Case = CASES[name]

    if case.cause is None:
        verify(case.body, case.headers, case.secrets, now=NOW)
        return
    with pytest.raises(VerificationError) as caught:
        verify(
            case.body,
            case.headers,
            case.secrets,
            require_standard=case.require_standard,
            now=NOW,
        )

    assert caught.value.cause == case.cause
    for words in case.says:
        assert words in str(caught.value)
    assert "\n" not in str(caught.value)  # one line, for logs and the CLI


def test_a_reserialised_body_gives_the_first_differing_byte_and_both_excerpts() -> None:
    received = json.dumps(json.loads(BODY)).encode()

    with pytest.raises(SignatureMismatchError) as caught:
        verify(received, signed(), [SECRET], now=NOW)

    difference = caught.value.difference
    assert difference is not None
    assert difference.offset == 9  # '{"event": ' : the space after the first colon
    assert difference.form == "compact JSON"
    assert difference.given == '{\\"event\\": \\"run.comple…'
    assert difference.signed == '{\\"event\\":\\"run.complet…'


@pytest.mark.parametrize(
    ("received", "form"),
    [
        (BODY + b"\n", "without its trailing newline"),  # a newline appended by a log or editor
        (BODY[:-1], None),  # cut: nothing restores it
        (  # keys sorted and spaced by a framework's serialiser: the order is lost for good
            json.dumps(json.loads(BODY), sort_keys=True).encode(),
            None,
        ),
        (  # non-ASCII escaped, compact: dumped with ensure_ascii
            json.dumps(json.loads(BODY), separators=(",", ":")).encode(),
            "compact JSON",
        ),
        (json.dumps(json.loads(BODY), indent=2).encode(), "compact JSON"),  # pretty-printed
    ],
)
def test_the_usual_reserialisations_are_recognised(received: bytes, form: str | None) -> None:
    with pytest.raises(SignatureMismatchError) as caught:
        verify(received, signed(), [SECRET], now=NOW)

    found = caught.value.difference
    assert (found.form if found else None) == form
    assert (caught.value.cause == "body_reserialised") is (form is not None)


def test_a_sender_that_signs_a_newline_more_is_found_too() -> None:
    sent = BODY + b"\n"

    with pytest.raises(SignatureMismatchError) as caught:
        verify(BODY, signed(sent), [SECRET], now=NOW)

    assert caught.value.cause == "body_reserialised"
    assert caught.value.difference is not None
    assert caught.value.difference.offset == len(BODY)


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        (  # Runflow-Signature keyed with the decoded bytes, the Standard Webhooks way
            {"Runflow-Signature": hmac.new(secret_key(SECRET), BODY, hashlib.sha256).hexdigest()},
            "base64-decoded bytes",
        ),
        (  # Runflow-Signature keyed without the prefix
            {
                "Runflow-Signature": hmac.new(
                    SECRET.removeprefix("whsec_").encode(), BODY, hashlib.sha256
                ).hexdigest()
            },
            "prefix included",
        ),
        (  # v1 keyed with the base64 text, not decoded
            {
                **signed(),
                "webhook-signature": "v1,"
                + base64.b64encode(
                    hmac.new(
                        SECRET.removeprefix("whsec_").encode(),
                        b"%s.%d.%s" % (MSG_ID.encode(), TS, BODY),
                        hashlib.sha256,
                    ).digest()
                ).decode(),
            },
            "not decoded",
        ),
    ],
)
def test_a_secret_used_in_the_wrong_form_is_named(headers: dict[str, str], says: str) -> None:
    with pytest.raises(SignatureMismatchError) as caught:
        verify(BODY, headers, [SECRET], now=NOW)

    assert caught.value.cause == "secret_format"
    assert says in str(caught.value)


def test_a_reserialised_body_is_found_under_runflow_signature() -> None:
    headers = {"Runflow-Signature": runflow_signature(SECRET, BODY)}

    with pytest.raises(SignatureMismatchError) as caught:
        verify(json.dumps(json.loads(BODY)).encode(), headers, [SECRET], now=NOW)

    assert caught.value.cause == "body_reserialised"


def test_a_reserialised_body_is_found_under_ed25519() -> None:
    private = generate_private_key(lambda n: b"\x05" * n)
    headers = signature_headers(
        body=BODY, msg_id=MSG_ID, timestamp=TS, current=None, active=[private]
    )

    with pytest.raises(SignatureMismatchError) as caught:
        verify(json.dumps(json.loads(BODY)).encode(), headers, [public_key_of(private)], now=NOW)

    assert caught.value.cause == "body_reserialised"


@pytest.mark.parametrize(
    ("headers", "secrets", "says"),
    [
        (  # Ed25519 signed, an HMAC secret held: a whsec_ given where a whpk_ is needed
            signature_headers(
                body=BODY,
                msg_id=MSG_ID,
                timestamp=TS,
                current=None,
                active=[generate_private_key(lambda n: b"\x05" * n)],
            ),
            [SECRET],
            "whpk_ public key",
        ),
        (  # HMAC signed, only an Ed25519 key held
            signed(),
            [public_key_of(generate_private_key(lambda n: b"\x05" * n))],
            "whsec_ secret",
        ),
        (  # Runflow-Signature, only an Ed25519 key held
            {"Runflow-Signature": runflow_signature(SECRET, BODY)},
            [public_key_of(generate_private_key(lambda n: b"\x05" * n))],
            "only Ed25519 keys",
        ),
        (  # only versions this verifier does not know
            {**signed(), "webhook-signature": "v2,abc"},
            [SECRET],
            "no v1 or v1a entry",
        ),
    ],
)
def test_a_scheme_no_secret_held_can_check_is_a_scheme_mismatch(
    headers: dict[str, str], secrets: list[str], says: str
) -> None:
    with pytest.raises(SignatureMismatchError) as caught:
        verify(BODY, headers, secrets, now=NOW)

    assert caught.value.cause == "scheme_mismatch"
    assert says in str(caught.value)


def test_a_body_over_the_bound_is_not_searched() -> None:
    big = b'{"a": "' + b"x" * MAX_DIAGNOSED_BODY + b'"}'
    calls: list[bytes] = []

    def counting(candidate: bytes) -> bool:
        calls.append(candidate)
        return False

    error = diagnose_mismatch(big, header="webhook-signature", verifies=counting)

    assert calls == []
    assert error.cause == "wrong_secret"
    assert "not searched" in str(error)


def test_a_body_gets_at_most_a_dozen_distinct_forms() -> None:
    forms = list(reserialisations(b'{"b": "\xc3\xa9", "a": 1}\r\n'))

    assert len(forms) <= 12
    assert len({candidate for _, candidate in forms}) == len(forms)


SPACED = "it is JSON, but not compact: spaces or newlines were added between tokens"


@pytest.mark.parametrize(
    ("body", "shape"),
    [
        (BODY, None),  # as runback sends it
        (json.dumps(json.loads(BODY), separators=(",", ":")).encode(), None),  # escaped, compact
        (b"", "it is empty"),
        (b"\xff\xfe", "it is not UTF-8 JSON"),
        (b'{"a": 1}', SPACED),
        (b'{"a":"b"}\n', SPACED),  # a newline after the document
        (b'{"a":"b c\\" d","n":1e16}', None),  # blanks inside strings; a number as orjson writes it
    ],
)
def test_a_body_unlike_what_runback_sends_says_how(body: bytes, shape: str | None) -> None:
    assert unlike_sent(body) == shape


@pytest.mark.parametrize(
    ("given", "signed_body", "offset"),
    [
        (b"abc", b"abd", 2),
        (b"abc", b"abc\n", 3),  # one is the start of the other
        (b"", b"a", 0),
    ],
)
def test_first_difference(given: bytes, signed_body: bytes, offset: int) -> None:
    assert first_difference(given, signed_body) == offset


def test_an_excerpt_is_one_escaped_line_cut_with_ellipses() -> None:
    data = b"0123456789" * 4 + b'\r\n"end'

    assert excerpt(data, 40) == '…890123456789\\r\\n\\"end'
    assert excerpt(b"short", 0) == "short"
