"""pydantic's validation errors in plain words: the API's ``422`` envelope and the CLI's one
line say what a value must be, in terms of JSON and of the setting, never pydantic's own
phrasing ("Input should be a valid integer, unable to parse string as an integer")."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_Context = Mapping[str, Any]

_FIXED: dict[str, str] = {
    "missing": "is required",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "uuid_type": "must be a UUID",
    "uuid_parsing": "must be a UUID",
    "datetime_type": "must be an ISO 8601 date and time",
    "datetime_parsing": "must be an ISO 8601 date and time",
    "datetime_from_date_parsing": "must be an ISO 8601 date and time",
    "url_type": "must be a URL",
    "url_parsing": "must be a URL",
    "url_scheme": "must be an http or https URL",
    "extra_forbidden": "is not a known field",
    "string_pattern_mismatch": "does not have the expected form",
    "json_invalid": "must be valid JSON",
}

_SHAPED: dict[str, Callable[[_Context], str]] = {
    "greater_than_equal": lambda c: f"must be at least {c['ge']}",
    "greater_than": lambda c: f"must be more than {c['gt']}",
    "less_than_equal": lambda c: f"must be at most {c['le']}",
    "less_than": lambda c: f"must be less than {c['lt']}",
    "string_too_short": lambda c: (
        "must not be empty" if c["min_length"] == 1 else f"needs {c['min_length']}+ characters"
    ),
    "string_too_long": lambda c: f"must be at most {c['max_length']} characters",
    "too_short": lambda c: f"needs at least {c['min_length']} items",
    "too_long": lambda c: f"must have at most {c['max_length']} items",
    "literal_error": lambda c: f"must be one of {c['expected']}",
    "enum": lambda c: f"must be one of {c['expected']}",
}


def problem(error: Mapping[str, Any]) -> str:
    """What is wrong with the value of one pydantic error, as a phrase ("must be an
    integer"); a validator's own message as it wrote it."""
    kind = str(error.get("type", ""))
    if kind in _FIXED:
        return _FIXED[kind]
    shaped = _SHAPED.get(kind)
    context = error.get("ctx") or {}
    if shaped is not None:
        try:
            return shaped(context)
        except KeyError:
            pass
    if kind in ("value_error", "assertion_error"):
        message = str(error.get("msg", ""))
        return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return "is invalid"
