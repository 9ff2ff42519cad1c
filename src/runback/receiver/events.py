"""What a received callback is about, read from its JSON without trusting it: key fields, the
dedupe key, the output URLs and when each expires. Pure: no I/O, no clock, never raises on a
payload.

**Key fields.** ``event``, ``run_id``, ``batch_id``, ``headshots_id``, ``taskUUID``, the
Runware result id and ``status`` are read from a top-level JSON object. A value counts only
when it is a string (or an integer, rendered in decimal) of 1 to 200 printable characters;
anything else (floats, booleans, objects, control characters, huge strings) reads as absent.

**The dedupe key**, the first rule that applies (each part percent-encoded, so ``:`` inside an
id cannot make two keys collide):

1. ``wh:<webhook-id>``: the Standard Webhooks ``webhook-id`` header, the same for every retry
   and redelivery of one event.
2. ``run:<run_id>:<event>``, else ``batch:<batch_id>:<event>``, else
   ``headshots:<headshots_id>:<event>`` (an absent ``event`` leaves the last part empty).
3. ``task:<taskUUID>:<result id>``: Runware-style senders post once per result, so two images
   of one task are two events. The result id is the first of ``imageUUID``, ``videoUUID``,
   ``audioUUID``, ``mediaUUID`` present (the fields of Runware's task responses).
4. ``body:<sha256 hex of the raw body>``: anything else, including a ``taskUUID`` without a
   result id, which only byte-identical retries share.

Keys are unique per source: the inbox scopes them by the source's name.

**Output URLs** are read from the known places, in this order: ``output.outputs[].url``
(runback and Runflow runs), ``output.image_urls[]``, ``image_urls[]`` (Runflow headshots),
``imageURL``, ``videoURL``, ``audioURL``, ``mediaURL`` (Runware image, video, audio and media
results) and ``outputs.files[].url`` (Runware 3D results), then the source's configured paths.
Only ``http(s)`` strings count; nothing under a ``metadata`` key is ever read (the caller's
own data, echoed verbatim).

**Path syntax.** Dot-separated keys, each followed by any number of ``[]`` (every element of
a list) or ``[N]`` (element N): ``result.files[].href``, ``data[0].imageURL``. A path may start
with brackets alone (``[].url``) when the payload itself is a list. It ends at the URL string;
the object holding that string may carry ``expires_at``, ``sha256``, ``content_type`` and
``size``, read into the ``OutputRef``.

**Expiry**, the first that applies: the entry's own ``expires_at`` (ISO 8601, or unix seconds);
the presigned query (AWS SigV4 ``X-Amz-Date`` + ``X-Amz-Expires``, GCS v4 ``X-Goog-Date`` +
``X-Goog-Expires``, Azure SAS ``se`` with ``sig``, ``Expires`` in unix seconds as AWS SigV2,
CloudFront and GCS v2 write it, runback's own ``/files`` ``expires``); else the time received
plus a default (24 hours). Query names are compared case-insensitively, since the schemes'
spellings differ only in case.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import parse_qsl, quote, urlsplit

from runback.errors import ConfigError

MAX_ID_LENGTH: Final = 200
MAX_URL_LENGTH: Final = 16384  # presigned URLs with session tokens run to a few kilobytes
DEFAULT_URL_LIFETIME: Final = timedelta(hours=24)
RESULT_ID_KEYS: Final = ("result_id", "imageUUID", "videoUUID", "audioUUID", "mediaUUID")
KNOWN_OUTPUT_PATHS: Final = (
    "output.outputs[].url",
    "result.output.url",
    "output.image_urls[]",
    "image_urls[]",
    "imageURL",
    "videoURL",
    "audioURL",
    "mediaURL",
    "outputs.files[].url",
)
NEVER_READ: Final = "metadata"

PathStep = str | int | None
"""A key of an object, an index of a list, or ``None`` for every element of a list."""

_MAX_PATH_LENGTH: Final = 300
_MAX_PATH_STEPS: Final = 32
_PART: Final = re.compile(r"([^.\[\]]*)((?:\[[0-9]{0,6}\])*)")
_AWS_DATE: Final = re.compile(r"[0-9]{8}T[0-9]{6}Z", re.ASCII)
_SECONDS: Final = re.compile(r"[0-9]{1,9}", re.ASCII)
_UNIX: Final = re.compile(r"[0-9]{1,12}", re.ASCII)
_SHA256: Final = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)


@dataclass(frozen=True, slots=True)
class EventKeys:
    """The key fields of one callback and the key that makes its duplicates one event."""

    event: str | None
    run_id: str | None
    batch_id: str | None
    headshots_id: str | None
    task_uuid: str | None
    result_id: str | None
    status: str | None
    dedupe_key: str
    sequence: int | None = None
    """A run's event's ``sequence``, when it carries one."""


@dataclass(frozen=True, slots=True)
class OutputRef:
    """One output URL of a payload: where it was, and what its entry says about it."""

    path: str
    url: str
    expires_at: datetime | None
    sha256: str | None
    content_type: str | None
    size: int | None


def _text(value: object, *, limit: int = MAX_ID_LENGTH) -> str | None:
    """``value`` as a sane string, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if abs(value) >= 10**limit:  # str() of a huge int raises; it is too long anyway
            return None
        value = str(value)
    if not isinstance(value, str) or not 0 < len(value) <= limit or not value.isprintable():
        return None
    return value


def _field(payload: Mapping[str, object], *names: str) -> str | None:
    for name in names:
        value = _text(payload.get(name))
        if value is not None:
            return value
    return None


def _key(*parts: str | None) -> str:
    return ":".join(quote(part or "", safe="") for part in parts)


def event_keys(payload: object, *, webhook_id: str | None, body: bytes) -> EventKeys:
    """The key fields of ``payload`` (the parsed ``body``) and its dedupe key. Total."""
    fields: Mapping[str, object] = payload if isinstance(payload, dict) else {}
    event, status = _field(fields, "event"), _field(fields, "status")
    run_id, batch_id = _field(fields, "run_id"), _field(fields, "batch_id")
    headshots_id, task_uuid = _field(fields, "headshots_id"), _field(fields, "taskUUID")
    result_id = _field(fields, *RESULT_ID_KEYS)
    # The body first, whatever headers came: one callback signed both ways, or once with
    # and once without a webhook-id, is one event (and its outputs are copied once).
    sequence = _field(fields, "sequence")
    webhook = _text(webhook_id)
    if run_id is not None:
        # A run sends one event of each kind, and one per result (each with its id).
        extra = [part for part in (result_id, sequence) if part is not None]
        dedupe_key = _key("run", run_id, event, *extra)
    elif batch_id is not None:
        dedupe_key = _key("batch", batch_id, event)
    elif headshots_id is not None:
        dedupe_key = _key("headshots", headshots_id, event)
    elif task_uuid is not None and result_id is not None:
        dedupe_key = _key("task", task_uuid, result_id)
    elif webhook is not None:
        dedupe_key = _key("wh", webhook)
    else:
        dedupe_key = _key("body", hashlib.sha256(body).hexdigest())
    return EventKeys(
        event=event,
        run_id=run_id,
        batch_id=batch_id,
        headshots_id=headshots_id,
        task_uuid=task_uuid,
        result_id=result_id,
        status=status,
        dedupe_key=dedupe_key,
        sequence=None if run_id is None or sequence is None else _whole(fields["sequence"]),
    )


def _whole(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        return None
    return value


def parse_output_path(text: str) -> tuple[PathStep, ...]:
    """The steps of an output path (syntax in the module docstring); ``ConfigError`` else."""
    if not text or len(text) > _MAX_PATH_LENGTH:
        raise ConfigError(f"an output path has 1 to {_MAX_PATH_LENGTH} characters")
    steps: list[PathStep] = []
    for position, part in enumerate(text.split(".")):
        match = _PART.fullmatch(part)
        if match is None or not (match[1] or (position == 0 and match[2])):
            raise ConfigError(f"{text!r} is not an output path (like result.files[].href)")
        if match[1] == NEVER_READ:
            raise ConfigError(f"{text!r} reads {NEVER_READ}, which is never read for outputs")
        if match[1]:
            steps.append(match[1])
        steps.extend(int(index) if index else None for index in re.findall(r"\[(\d*)\]", part))
    if len(steps) > _MAX_PATH_STEPS:
        raise ConfigError(f"{text!r} has more than {_MAX_PATH_STEPS} steps")
    return tuple(steps)


def _resolve(
    node: object, steps: tuple[PathStep, ...], here: str, holder: object
) -> Iterator[tuple[str, object, object]]:
    """Every ``(path, holder, value)`` that ``steps`` reach from ``node``."""
    if not steps:
        yield here, holder, node
        return
    step, rest = steps[0], steps[1:]
    if isinstance(step, str):
        if isinstance(node, dict) and step in node:
            yield from _resolve(node[step], rest, f"{here}.{step}" if here else step, node)
    elif isinstance(node, list):
        indexes = range(len(node)) if step is None else range(step, min(step + 1, len(node)))
        for index in indexes:
            yield from _resolve(node[index], rest, f"{here}[{index}]", node)


def _http_url(value: object) -> str | None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_URL_LENGTH:
        return None
    if any(char.isspace() or not char.isprintable() for char in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return value


def _when(value: object) -> datetime | None:
    """An ISO 8601 string or unix seconds as an aware UTC datetime; None if it is neither."""
    try:
        if isinstance(value, str) and len(value) <= 64:
            when = datetime.fromisoformat(value)
            return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _ref(path: str, url: str, holder: object) -> OutputRef:
    entry: Mapping[str, object] = holder if isinstance(holder, dict) else {}
    sha256, size = entry.get("sha256"), entry.get("size")
    return OutputRef(
        path=path,
        url=url,
        expires_at=_when(entry.get("expires_at")),
        sha256=sha256.lower() if isinstance(sha256, str) and _SHA256.fullmatch(sha256) else None,
        content_type=_text(entry.get("content_type"), limit=255),
        size=size if type(size) is int and 0 <= size < 2**63 else None,
    )


def output_refs(payload: object, *, extra_paths: Sequence[str] = ()) -> list[OutputRef]:
    """Every http(s) output URL in the known places and ``extra_paths``, one per path, in a
    stable order. Total over payloads; an unparseable extra path raises ``ConfigError``."""
    paths = [parse_output_path(text) for text in (*KNOWN_OUTPUT_PATHS, *extra_paths)]
    refs: dict[str, OutputRef] = {}
    for steps in paths:
        for here, holder, value in _resolve(payload, steps, "", None):
            url = _http_url(value)
            if url is not None and here not in refs:
                refs[here] = _ref(here, url, holder)
    return list(refs.values())


def _query(url: str) -> dict[str, str]:
    """The query's parameters by lower-cased name, the first of each name winning."""
    try:
        pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return {}
    params: dict[str, str] = {}
    for name, value in pairs:
        params.setdefault(name.lower(), value)
    return params


def _signed_for(params: Mapping[str, str], prefix: str) -> datetime | None:
    """AWS SigV4 (``x-amz``) and GCS v4 (``x-goog``): a signing time plus seconds."""
    date, seconds = params.get(f"{prefix}-date", ""), params.get(f"{prefix}-expires", "")
    if not (_AWS_DATE.fullmatch(date) and _SECONDS.fullmatch(seconds)):
        return None
    try:
        signed = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return signed + timedelta(seconds=int(seconds))
    except (ValueError, OverflowError):
        return None


def _expiry_in_query(params: Mapping[str, str]) -> datetime | None:
    for prefix in ("x-amz", "x-goog"):
        when = _signed_for(params, prefix)
        if when is not None:
            return when
    if "sig" in params and "se" in params:  # Azure SAS: ``se`` is the signed expiry
        when = _when(params["se"])
        if when is not None:
            return when
    expires = params.get("expires", "")  # SigV2, CloudFront, GCS v2, runback's /files
    return _when(int(expires)) if _UNIX.fullmatch(expires) else None


def url_expiry(
    url: str, *, received_at: datetime, default: timedelta = DEFAULT_URL_LIFETIME
) -> datetime:
    """When the presigned ``url`` expires, by its own query; else ``received_at + default``.

    Total: a URL or a value that cannot be read gives the default.
    """
    when = _expiry_in_query(_query(url)) if isinstance(url, str) else None
    return when if when is not None else received_at + default


def ref_expiry(
    ref: OutputRef, *, received_at: datetime, default: timedelta = DEFAULT_URL_LIFETIME
) -> datetime:
    """When ``ref`` expires: its payload's ``expires_at`` wins over what its URL says."""
    if ref.expires_at is not None:
        return ref.expires_at
    return url_expiry(ref.url, received_at=received_at, default=default)
