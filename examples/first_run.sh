#!/usr/bin/env bash
# Submit a run to a runback server, then poll it until it ends.
#   RUNBACK_KEY=rb_... ./examples/first_run.sh [callback_url]
# RUNBACK_URL defaults to http://127.0.0.1:8000. With a callback_url, runback also POSTs the
# signed result there when the run ends.
set -euo pipefail
url=${RUNBACK_URL:-http://127.0.0.1:8000}
callback=${1:+, \"callback_url\": \"$1\"}

run=$(curl -sS --fail-with-body -X POST "$url/v1/models/runback/echo/runs" \
  -H "Authorization: Bearer $RUNBACK_KEY" -H "Content-Type: application/json" \
  -d "{\"input\": {\"hello\": \"world\"}$callback}")
id=$(printf '%s' "$run" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
echo "submitted run $id"

for _ in $(seq 100); do
  run=$(curl -sS --fail-with-body "$url/v1/runs/$id" -H "Authorization: Bearer $RUNBACK_KEY")
  status=$(printf '%s' "$run" | python3 -c 'import json, sys; print(json.load(sys.stdin)["status_code"])')
  case $status in queued|dispatching|running) sleep 0.1 ;; *) break ;; esac
done
echo "$run"
