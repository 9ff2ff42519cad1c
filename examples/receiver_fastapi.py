"""A FastAPI endpoint that receives runback (or Runflow) callbacks: verify, persist, 200.

    RUNBACK_SECRET=whsec_... uvicorn receiver_fastapi:app --port 9000

The library does the verification on the raw body; the rest is yours. Here ``seen`` stands
for your database: write the event there, idempotently, before answering.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException

from runback.receiver.starlette import VerifiedWebhook, Webhook, install

NO_SECRET = (
    "RUNBACK_SECRET is not set, so no callback can be verified: set it to the signing "
    "secret runback printed at its first start (or one made with POST /v1/callback-secrets)"
)

app = FastAPI()
install(app)  # a failed verification answers 401 {"code": "INVALID_SIGNATURE", ...}
secrets = [s for s in os.environ.get("RUNBACK_SECRET", "").split(",") if s.strip()]
seen: dict[str, dict[str, Any]] = {}


async def refuse_all() -> Webhook:
    raise HTTPException(401, detail=NO_SECRET)


if secrets:
    verified: Any = VerifiedWebhook(secrets)
else:
    print(f"receiver_fastapi: {NO_SECRET}; every callback is answered 401", file=sys.stderr)
    verified = refuse_all


@app.post("/webhooks/runback")
async def receive(webhook: Annotated[Webhook, Depends(verified)]) -> dict[str, bool]:
    event = webhook.json()
    key = webhook.verified.webhook_id or f"{event['run_id']}:{event['event']}"
    duplicate = key in seen
    seen.setdefault(key, event)  # your database: insert once, keyed on the event
    return {"received": True, "duplicate": duplicate}
