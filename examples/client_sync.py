"""Submit a run, wait for its end, find it again, and read an error: the synchronous client.

RUNBACK_URL=http://127.0.0.1:8000 RUNBACK_KEY=rb_... python examples/client_sync.py
"""

import os

import runback
from runback.errors import NotFoundError

with runback.Client(os.environ["RUNBACK_URL"], os.environ["RUNBACK_KEY"]) as client:
    run = client.runs.create("runback/echo", {"hello": "world"}, client_ref="order-42")
    ended = client.runs.wait(run.id, timeout=60)
    print(ended.status_code, ended.output)

    for found in client.runs.list(client_ref="order-42"):  # every page, newest first
        print(found.id, found.status_code, found.created_at.isoformat())

    try:
        client.runs.get("no-such-run")
    except NotFoundError as error:
        print(error.status, error.code, error.message)
