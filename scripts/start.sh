#!/usr/bin/env bash
# One command: set up, migrate, seed demo data (first time) and run web + worker on SQLite, with
# a demo gateway agent (elt-gateway) running demo/jobs/ for the runs demo_schedule queues.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DEBUG="${DEBUG:-true}"
export PORT="${PORT:-8000}"
export WEBHOOK_ALLOW_PRIVATE_URLS="${WEBHOOK_ALLOW_PRIVATE_URLS:-true}"
DEMO_GATEWAY="${DEMO_GATEWAY:-true}"
.venv/bin/python manage.py migrate --noinput -v 0
if ! .venv/bin/python manage.py shell -c "from runs.models import Run; raise SystemExit(0 if Run.objects.exists() else 1)"; then
  .venv/bin/python manage.py seed_demo --runs 2000
fi
.venv/bin/python manage.py collectstatic --noinput -v 0
.venv/bin/python manage.py run_worker &
worker=$!
agent=""
schedule=""
stop_all() {
  # Two signals to the agent: stop claiming, then cancel what runs (its jobs report canceled).
  if [ -n "$agent" ]; then kill -TERM "$agent" 2>/dev/null || true; sleep 0.2; kill -TERM "$agent" 2>/dev/null || true; fi
  kill $worker $schedule 2>/dev/null || true
}
trap stop_all EXIT
if [ "$DEMO_GATEWAY" = "true" ]; then
  # A new token for the demo gateway on every start (create_gateway prints it last).
  ELT_GATEWAY_TOKEN="$(.venv/bin/python manage.py create_gateway demo-gateway --token-name demo-agent | tail -1)"
  export ELT_GATEWAY_TOKEN
  (
    until .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', ${PORT}), 1)" 2>/dev/null; do sleep 1; done
    exec .venv/bin/elt-gateway --url "http://127.0.0.1:${PORT}" --config demo/gateway.toml
  ) &
  agent=$!
  unset ELT_GATEWAY_TOKEN
  .venv/bin/python manage.py demo_schedule --gateway demo-gateway --config demo/gateway.toml &
  schedule=$!
  echo "Demo gateway 'demo-gateway' runs demo/gateway.toml (elt-gateway); demo_schedule queues a run every ~25s (DEMO_GATEWAY=false turns both off)"
fi
echo "Open http://127.0.0.1:${PORT}/ (sign in with the login printed above when the data was seeded)"
.venv/bin/gunicorn config.wsgi --bind "127.0.0.1:${PORT}" --workers 2 --threads 4 --access-logfile -
