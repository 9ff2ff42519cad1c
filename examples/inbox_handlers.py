"""Handlers for ``runback receive``: run after each event is stored, at least once.

    PYTHONPATH=examples runback receive --secret whsec_... --handlers inbox_handlers

A handler runs outside the request, is retried with backoff when it raises, and may run
again for the same event after a crash: key its effects on ``event.dedupe_key``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from runback.receiver.handlers import HandlerRegistry, ReceivedEvent

handlers = HandlerRegistry()
LOG = Path(os.environ.get("INBOX_LOG", "inbox-events.jsonl"))


@handlers.on("run.completed")
def completed(event: ReceivedEvent) -> None:
    """Append each completed run to a JSON-lines log, once per event."""
    seen = LOG.read_text().splitlines() if LOG.exists() else []
    if any(json.loads(line)["key"] == event.dedupe_key for line in seen):
        return  # already handled: handlers run at least once
    line = {"key": event.dedupe_key, "run_id": event.payload.get("run_id")}
    with LOG.open("a") as log:
        log.write(json.dumps(line) + "\n")
