#!/usr/bin/env bash
# One command: set up, migrate, seed demo data (first time) and run web + worker on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DEBUG="${DEBUG:-true}"
export PORT="${PORT:-8000}"
export WEBHOOK_ALLOW_PRIVATE_URLS="${WEBHOOK_ALLOW_PRIVATE_URLS:-true}"
.venv/bin/python manage.py migrate --noinput -v 0
if ! .venv/bin/python manage.py shell -c "from runs.models import Run; raise SystemExit(0 if Run.objects.exists() else 1)"; then
  .venv/bin/python manage.py seed_demo --runs 2000
fi
.venv/bin/python manage.py collectstatic --noinput -v 0
.venv/bin/python manage.py run_worker &
worker=$!
trap 'kill $worker 2>/dev/null' EXIT
echo "Open http://127.0.0.1:${PORT}/ (sign in with the login printed above when the data was seeded)"
.venv/bin/gunicorn config.wsgi --bind "127.0.0.1:${PORT}" --workers 2 --threads 4 --access-logfile -
