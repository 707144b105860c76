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
# The test database is the suite's own and is made anew each run: a schema that another checkout migrated
# further (a revision this one does not have) would otherwise stop `alembic upgrade` here.
echo "==> creating database $db_name"
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)"
psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE \"$db_name\""

echo "==> migrating $db_name"
DATABASE_URL=$TEST_DATABASE_URL .venv/bin/alembic upgrade head >/dev/null

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy --strict src/"
.venv/bin/mypy
echo "==> pytest"
.venv/bin/pytest "$@"
