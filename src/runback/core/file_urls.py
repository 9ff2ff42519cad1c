"""Signed, expiring URLs for output files that runback serves itself at ``/files/...``.

``/files/<key>?expires=<unix seconds>&signature=<hex>``, the signature an HMAC-SHA256 of
``"<key>\\n<expires>"`` with a secret runback keeps in its database (so URLs survive restarts
and every process shares them). Any change to the key or the expiry breaks the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from urllib.parse import quote

from runback.errors import RunbackError

FILES_PATH = "/files/"
_EXPIRES = re.compile(r"[0-9]{1,12}", re.ASCII)
_SIGNATURE = re.compile(r"[0-9a-f]{64}", re.ASCII)


class FileUrlError(RunbackError):
    """A file URL that is expired or was not signed by this runback."""


def _signature(secret: bytes, key: str, expires: int) -> str:
    return hmac.new(secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()


def sign_file_url(*, base_url: str, key: str, expires_at: datetime, secret: bytes) -> str:
    """The URL of ``key`` under ``base_url``, valid until ``expires_at``."""
    expires = int(expires_at.timestamp())
    path = quote(key, safe="/")
    signature = _signature(secret, key, expires)
    return f"{base_url.rstrip('/')}{FILES_PATH}{path}?expires={expires}&signature={signature}"


def check_file_url(
    *, key: str, expires: str | None, signature: str | None, secret: bytes, now: datetime
) -> None:
    """Raise ``FileUrlError`` unless ``signature`` signs ``key`` until ``expires`` > ``now``."""
    if expires is None or signature is None:
        raise FileUrlError("the URL is not signed: ask for the run's output URLs again")
    if not _EXPIRES.fullmatch(expires) or not _SIGNATURE.fullmatch(signature):
        raise FileUrlError("the URL's signature does not match: it was altered or is not ours")
    if not hmac.compare_digest(_signature(secret, key, int(expires)), signature):
        raise FileUrlError("the URL's signature does not match: it was altered or is not ours")
    if int(expires) <= now.timestamp():
        raise FileUrlError("the URL has expired: ask for the run's output URLs again")
