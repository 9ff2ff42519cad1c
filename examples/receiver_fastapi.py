"""A FastAPI endpoint that receives runback (or Runflow) callbacks: verify, persist, 200.

    RUNBACK_SECRET=whsec_... uvicorn receiver_fastapi:app --port 9000

The library does the verification on the raw body; the rest is yours. Here ``seen`` stands
for your database: write the event there, idempotently, before answering.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from runback.receiver.starlette import VerifiedWebhook, Webhook, install

app = FastAPI()
install(app)  # a failed verification answers 401 {"code": "INVALID_SIGNATURE", ...}
verified = VerifiedWebhook(os.environ.get("RUNBACK_SECRET", "").split(","))
seen: dict[str, dict[str, Any]] = {}


@app.post("/webhooks/runback")
async def receive(webhook: Annotated[Webhook, Depends(verified)]) -> dict[str, bool]:
    event = webhook.json()
    key = webhook.verified.webhook_id or f"{event['run_id']}:{event['event']}"
    duplicate = key in seen
    seen.setdefault(key, event)  # your database: insert once, keyed on the event
    return {"received": True, "duplicate": duplicate}
