"""The one error tree of runback.

Every error runback raises on purpose is a ``RunbackError``; its message says what went wrong
and what to do about it. Errors that cross the HTTP boundary carry ``status_code`` and a stable
``code`` (the contract's envelope) as class attributes::

    RunbackError
    ├── ConfigError                 bad settings or flags (the CLI prints one line)
    │   └── InvalidSecretError      a secret not of the form whsec_/whpk_/whsk_ + base64
    ├── StoreError                  the database cannot be used as asked
    │   ├── SchemaTooNewError       written by a newer runback: upgrade before using it
    │   ├── SchemaOutdatedError     older than this runback, and automatic migration is off
    │   ├── DataDirLockedError      another `runback serve` holds the data directory
    │   ├── DeliveryInFlightError   a run already has a delivery pending or delivering
    │   ├── IdempotencyKeyReusedError  an Idempotency-Key came back with another request
    │   ├── SecretDisabledError     a disabled secret cannot be made current
    │   ├── SecretInUseError        the current secret cannot go while others remain
    │   └── NotFoundInStoreError    no such organization or key
    ├── InvalidTransitionError      a status change the transition tables forbid: a bug
    ├── UrlRefusedError             an outbound URL fails the URL policy
    ├── VerificationError           a received callback is not authentic: 401 INVALID_SIGNATURE;
    │   │                           ``cause`` (a ``VerificationCause``) says why
    │   ├── MissingSignatureError   no signature header (or only Runflow-Signature where the
    │   │                           Standard Webhooks headers are required)
    │   ├── MalformedSignatureError a signature header that does not parse
    │   ├── SignatureMismatchError  no secret matches: raw body? right secret?
    │   └── TimestampOutsideToleranceError  clock skew, or a replayed request
    ├── ModelError                raised by a model to fail its run with a chosen code
    ├── TransportError              the client could not reach the server, or had no answer
    │                               in time (after its retries)
    ├── WaitTimeoutError            the client's ``wait`` saw no end of the run in time
    ├── UnexpectedAnswerError       an answer not of the API's shape (another service there?)
    └── ApiError                    answered as {"code", "message", "errors"}; the client
        │                           raises the same classes, mapped from the answer's status
        ├── BadRequestError         400 BAD_REQUEST
        ├── UnauthorizedError       401 UNAUTHORIZED
        ├── PermissionDeniedError   403 PERMISSION_DENIED
        ├── NotFoundError           404 NOT_FOUND (RUN_NOT_FOUND, MODEL_UNAVAILABLE, ...)
        ├── ConflictError           409 CONFLICT
        ├── PayloadTooLargeError    413 PAYLOAD_TOO_LARGE
        ├── UnsupportedMediaError   415 UNSUPPORTED_MEDIA_TYPE
        ├── RateLimitedError        429 RATE_LIMITED
        ├── ThinBodyError           502 THIN_BODY_UNAVAILABLE: a thin callback's full body
        │                           could not be fetched, or is not the callback's
        ├── ValidationFailedError   422 VALIDATION_ERROR, with field-level ``errors``
        └── ServiceUnavailableError 503 SERVICE_UNAVAILABLE: nothing committed, retry
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, TypedDict


class FieldError(TypedDict):
    """One field-level problem of a ``422``: where it is and what is wrong."""

    field: str
    message: str


class RunbackError(Exception):
    """Base of every error runback raises on purpose."""


class ConfigError(RunbackError):
    """A setting, flag or environment variable has a value runback cannot use."""


class InvalidSecretError(ConfigError):
    """A callback secret or key not of its documented form (``whsec_``, ``whpk_``, ``whsk_``)."""


class StoreError(RunbackError):
    """The database cannot be used as asked."""


class DatabaseUnavailableError(StoreError):
    """The database could not be reached, or dropped the connection (a restart, a
    failover): the call committed nothing. Retry; a request with its Idempotency-Key."""


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer runback than this one."""


class SchemaOutdatedError(StoreError):
    """The database needs migrating, and automatic migration is off."""


class DataDirLockedError(StoreError):
    """Another process holds the data directory."""


class DeliveryInFlightError(StoreError):
    """A run already has a delivery pending or delivering; at most one may be."""


class IdempotencyKeyReusedError(StoreError):
    """An ``Idempotency-Key`` was used before with a different request."""


class SecretDisabledError(StoreError):
    """A disabled secret was asked to sign again."""


class SecretInUseError(StoreError):
    """The current secret was asked to go while other secrets remain active."""


class NotFoundInStoreError(StoreError):
    """An organization or API key named on the command line does not exist."""


class InvalidTransitionError(RunbackError):
    """A status change the transition tables (``runback.core.states``) do not allow: a bug
    in the code that asked for it, never the user's doing."""


class UrlRefusedError(RunbackError):
    """An outbound URL fails the URL policy; ``reason`` is a stable short code."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class VerificationCause(StrEnum):
    """Why a callback failed verification: a stable value for programs (and for the exit
    status of ``runback verify``); the error's message says it in words."""

    BODY_CHANGED = "body_changed"  # the body is not as signed, and no usual re-serialisation is
    BODY_RESERIALISED = "body_reserialised"  # a usual re-serialisation of the body verifies
    WRONG_SECRET = "wrong_secret"  # the body looks as sent; no secret held made the signature
    SECRET_FORMAT = "secret_format"  # the right secret, used in the wrong form
    TIMESTAMP_STALE = "timestamp_stale"  # genuine, signed too long ago: skew or a replay
    TIMESTAMP_FUTURE = "timestamp_future"  # genuine, signed ahead of now: clock skew
    MALFORMED_HEADER = "malformed_header"
    MISSING_HEADER = "missing_header"
    SCHEME_MISMATCH = "scheme_mismatch"  # signed in a scheme no secret held can check


@dataclass(frozen=True, slots=True)
class BodyDifference:
    """Where a received body first differs from the body that verifies.

    ``offset`` is the first differing byte; ``given`` and ``signed`` are short excerpts of
    each around it, escaped to one printable line; ``form`` names the re-serialisation that
    verified (e.g. ``compact JSON``).
    """

    offset: int
    given: str
    signed: str
    form: str


class VerificationError(RunbackError):
    """A received callback failed verification: answer ``401``, do not process it.

    The message says what to check; it is safe to send back to the sender. ``status_code`` and
    ``code`` are what the receiver adapters answer, in the contract's envelope. ``cause`` says
    why as a stable value; ``difference`` is set when a re-serialised body verifies.
    """

    status_code: ClassVar[int] = 401
    code: ClassVar[str] = "INVALID_SIGNATURE"
    default_cause: ClassVar[VerificationCause] = VerificationCause.WRONG_SECRET

    def __init__(
        self,
        message: str,
        *,
        cause: VerificationCause | None = None,
        difference: BodyDifference | None = None,
    ) -> None:
        super().__init__(message)
        self.cause = cause or self.default_cause
        self.difference = difference

    def envelope(self) -> dict[str, Any]:
        """The JSON body of the ``401``."""
        return {"code": self.code, "message": str(self), "errors": None}


class MissingSignatureError(VerificationError):
    """No signature header, or only ``Runflow-Signature`` where Standard Webhooks is required
    (then ``cause`` is ``scheme_mismatch``)."""

    default_cause = VerificationCause.MISSING_HEADER


class MalformedSignatureError(VerificationError):
    """A signature header that does not parse; ``header`` names it."""

    default_cause = VerificationCause.MALFORMED_HEADER

    def __init__(self, message: str, *, header: str) -> None:
        super().__init__(message)
        self.header = header


class SignatureMismatchError(VerificationError):
    """Well-formed signatures, but none made by any of the secrets held; ``cause`` says
    what the diagnosis found: the body changed or re-serialised, the wrong secret, the right
    secret in the wrong form, or a scheme no secret held can check."""


class TimestampOutsideToleranceError(VerificationError):
    """A genuine signature whose ``webhook-timestamp`` is too far from now (``cause``:
    ``timestamp_stale`` or ``timestamp_future``)."""

    default_cause = VerificationCause.TIMESTAMP_STALE


class ModelError(RunbackError):
    """Raised by a model to fail its run with a chosen ``failure_code``.

    With ``partial=True``, a run that saved some output files before failing ends
    ``partial_succeeded``: its files are delivered with the error.
    """

    def __init__(self, message: str, *, code: str = "model_error", partial: bool = False):
        super().__init__(message)
        self.code = code
        self.partial = partial


class TransportError(RunbackError):
    """The client reached no server, lost the connection, or had no answer within its
    timeout, on every attempt it was allowed."""


class WaitTimeoutError(RunbackError, TimeoutError):
    """A run did not end within the time the client's ``wait`` was given."""


class UnexpectedAnswerError(RunbackError):
    """A successful answer the client cannot read as the API documents it: another service
    at the URL, or a proxy's own page."""


class ApiError(RunbackError):
    """An error answered over HTTP with the contract's envelope.

    ``status`` is the HTTP status it was answered with: the class's ``status_code``, or, for
    an error the client read from a status without a class of its own, that status.
    """

    status_code: ClassVar[int] = 500
    code: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        errors: list[FieldError] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.errors = errors
        self.status = self.status_code if status is None else status

    def envelope(self) -> dict[str, Any]:
        """The JSON body of this error."""
        return {"code": self.code, "message": self.message, "errors": self.errors}

    @classmethod
    def from_answer(cls, status: int, body: object) -> ApiError:
        """The error an answer with ``status`` and ``body`` (the envelope, or anything a
        proxy said instead) stands for, of the class of that status when it has one."""
        envelope: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
        message = envelope.get("message")
        code = envelope.get("code")
        found = _BY_STATUS.get(status, ApiError)
        return found(
            message if isinstance(message, str) else f"the server answered HTTP {status}",
            code=code if isinstance(code, str) else None,
            errors=_field_errors(envelope.get("errors")),
            status=status,
        )


def _field_errors(value: object) -> list[FieldError] | None:
    if not isinstance(value, list):
        return None
    return [
        FieldError(field=str(item.get("field", "")), message=str(item.get("message", "")))
        for item in value
        if isinstance(item, Mapping)
    ]


class BadRequestError(ApiError):
    status_code = 400
    code = "BAD_REQUEST"


class UnauthorizedError(ApiError):
    status_code = 401
    code = "UNAUTHORIZED"


class PermissionDeniedError(ApiError):
    status_code = 403
    code = "PERMISSION_DENIED"


class NotFoundError(ApiError):
    status_code = 404
    code = "NOT_FOUND"


class ConflictError(ApiError):
    status_code = 409
    code = "CONFLICT"


class PayloadTooLargeError(ApiError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaError(ApiError):
    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class RateLimitedError(ApiError):
    status_code = 429
    code = "RATE_LIMITED"


class ThinBodyError(ApiError):
    """A verified thin callback whose full body (at its ``output_url``) could not be
    fetched, or is not the body of the same event: answered ``502``, so the sender retries."""

    status_code = 502
    code = "THIN_BODY_UNAVAILABLE"


class ServiceUnavailableError(ApiError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"


class ValidationFailedError(ApiError):
    status_code = 422
    code = "VALIDATION_ERROR"

    @classmethod
    def for_field(cls, field: str, message: str) -> ValidationFailedError:
        """A 422 naming one field and its problem."""
        return cls(f"{field}: {message}", errors=[{"field": field, "message": message}])


_BY_STATUS: dict[int, type[ApiError]] = {
    error.status_code: error
    for error in (
        BadRequestError,
        UnauthorizedError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        PayloadTooLargeError,
        UnsupportedMediaError,
        RateLimitedError,
        ValidationFailedError,
        ServiceUnavailableError,
    )
}
"""The class the client raises for each status the API answers with an envelope."""
