#!/usr/bin/env bash
# The whole test suite: first on PostgreSQL, then again on the embedded SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The app refuses to start with DEBUG=false and no key of its own; the tests use a random one.
export SECRET_KEY="${SECRET_KEY:-$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))')}"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
.venv/bin/mypy
.venv/bin/python manage.py makemigrations --check --dry-run >/dev/null
.venv/bin/python manage.py collectstatic --noinput -v 0

echo "== PostgreSQL"
DATABASE_URL="${TEST_DATABASE_URL:-postgres://root@127.0.0.1:5432/elt}" \
  .venv/bin/python -m pytest -p no:cacheprovider "$@"
echo "== SQLite"
DATABASE_URL="sqlite:///$(pwd)/db-test.sqlite3" .venv/bin/python -m pytest -p no:cacheprovider "$@"
