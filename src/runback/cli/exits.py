"""One exit status per kind of failure, the same for every command (``docs/cli.md``)."""

from __future__ import annotations

from enum import IntEnum

from runback.errors import (
    ApiError,
    DatabaseUnavailableError,
    NotFoundInStoreError,
    PermissionDeniedError,
    RunbackError,
    TransportError,
    UnauthorizedError,
    UnexpectedAnswerError,
    WaitTimeoutError,
)


class Exit(IntEnum):
    """The exit statuses of every command, one per kind of failure."""

    OK = 0
    REFUSED = 1
    """runback refused or failed the request (a 4xx other than below, a conflict)."""
    USAGE = 2
    """A bad flag, argument or setting; no API key."""
    AUTH = 3
    """The key is unknown, revoked, or not allowed this (401, 403)."""
    NOT_FOUND = 4
    """No such run, delivery, secret (404), organization or key."""
    UNREACHABLE = 5
    """No answer from the API (or the database), a 5xx, or an answer that is not runback's."""
    HANDLER = 6
    """``listen --replay``, ``trigger``: the handler did not answer 2xx (or not at all)."""
    TIMEOUT = 7
    """``runs wait --timeout``: the run had not ended."""
    INTERRUPTED = 130


EXIT_CODES_HELP = (
    "Exit status: 0 done; 1 refused by runback; 2 usage (a bad flag or setting); "
    "3 authentication (key unknown, revoked or not allowed); 4 not found; 5 API unreachable "
    "or failing; 6 listen --replay or trigger: the handler did not answer 2xx; 7 runs wait "
    "timed out; 130 interrupted."
)


KINDS: tuple[tuple[tuple[type[RunbackError], ...], Exit], ...] = (
    ((NotFoundInStoreError,), Exit.NOT_FOUND),
    ((UnauthorizedError, PermissionDeniedError), Exit.AUTH),
    ((TransportError, UnexpectedAnswerError, DatabaseUnavailableError), Exit.UNREACHABLE),
    ((WaitTimeoutError,), Exit.TIMEOUT),
)
"""Errors and the exit status of their kind; any other runback error is ``REFUSED``."""


def exit_status(error: RunbackError) -> Exit:
    """The exit status an error stands for."""
    for kinds, status in KINDS:
        if isinstance(error, kinds):
            return status
    if isinstance(error, ApiError) and error.status == 404:
        return Exit.NOT_FOUND
    if isinstance(error, ApiError) and error.status >= 500:
        return Exit.UNREACHABLE
    return Exit.REFUSED
