#!/usr/bin/env bash
# The test command (README, `make test`, and .ci/run): install, services, test database, migrations,
# lint, type check, then the whole pytest suite against real PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
bash scripts/services.sh

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/cerniq_test}
export TEST_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/9}
db_name=${TEST_DATABASE_URL##*/}
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db_name'" | grep -q 1; then
  echo "==> creating database $db_name"
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE \"$db_name\""
fi

echo "==> migrating $db_name"
DATABASE_URL=$TEST_DATABASE_URL .venv/bin/alembic upgrade head >/dev/null

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy --strict src/"
.venv/bin/mypy
echo "==> pytest"
.venv/bin/pytest "$@"
