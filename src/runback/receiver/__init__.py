"""The receiving side, as a light library: verify a callback before trusting a byte of it.

Imports no web framework, no database and nothing of the server half, so a consumer can
depend on this part alone. The framework adapters live beside it and import their framework
only when imported themselves: ``runback.receiver.starlette`` (FastAPI, Starlette),
``runback.receiver.flask``, ``runback.receiver.django``.
"""

from runback.core.verification import DEFAULT_TOLERANCE, Verified, Verifier, verify
from runback.errors import (
    BodyDifference,
    InvalidSecretError,
    MalformedSignatureError,
    MissingSignatureError,
    SignatureMismatchError,
    TimestampOutsideToleranceError,
    VerificationCause,
    VerificationError,
)
from runback.receiver.freshness import LatestSequences

__all__ = [
    "DEFAULT_TOLERANCE",
    "BodyDifference",
    "InvalidSecretError",
    "LatestSequences",
    "MalformedSignatureError",
    "MissingSignatureError",
    "SignatureMismatchError",
    "TimestampOutsideToleranceError",
    "VerificationCause",
    "VerificationError",
    "Verified",
    "Verifier",
    "verify",
]
