#!/usr/bin/env bash
# `make demo`: from a fresh clone, the whole service on one screen.
#
#  1. creates .venv and installs (scripts/bootstrap.sh)
#  2. makes PostgreSQL and Redis reachable, each on its own:
#       DATABASE_URL / REDIS_URL (environment or .env) when they answer;
#       otherwise a throwaway local server started from the installed binaries (initdb/pg_ctl,
#       redis-server), data under .demo/, on a free port;
#       otherwise `docker compose up -d` of compose.yaml's postgres and redis, when a Docker engine answers;
#       otherwise it says what to install and exits 1
#  3. migrates, then runs `python -m src.ops demo`: seeds the demo tenant, starts the real worker,
#     a dry run and a dispatch through it, prints the summary, stops the worker
#  4. stops what it started (DEMO_KEEP=1 leaves throwaway servers running and says how to stop them)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEMO_DIR=${DEMO_DIR:-$ROOT/.demo}
DEMO_DB=${DEMO_DB:-cerniq_demo}
mkdir -p "$DEMO_DIR"
DEMO_DIR=$(cd "$DEMO_DIR" && pwd)

bash scripts/bootstrap.sh
PY=$ROOT/.venv/bin/python

note() { printf '==> %s\n' "$*"; }
configured() {  # a setting from the environment, else from .env, else empty
  "$PY" - "$1" <<'PYTHON'
import os, sys
from dotenv import dotenv_values
name = sys.argv[1]
print(os.environ.get(name) or (dotenv_values(".env").get(name) if os.path.exists(".env") else "") or "")
PYTHON
}
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
probe() { "$PY" -m src.ops.probe "$@" 2>/dev/null; }

STARTED_PG_DIR="" STARTED_PG_USER="" STARTED_PG_BIN="" STARTED_REDIS_PID="" STARTED_COMPOSE=""
cleanup() {
  if [ "${DEMO_KEEP:-0}" = 1 ]; then
    [ -n "$STARTED_PG_DIR$STARTED_REDIS_PID$STARTED_COMPOSE" ] && kept_message
    return
  fi
  if [ -n "$STARTED_PG_DIR" ]; then
    as_pg_user "$STARTED_PG_BIN/pg_ctl" -D "$STARTED_PG_DIR" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$STARTED_PG_DIR"
    note "stopped the throwaway PostgreSQL"
  fi
  if [ -n "$STARTED_REDIS_PID" ]; then
    kill "$STARTED_REDIS_PID" 2>/dev/null || true
    note "stopped the throwaway Redis"
  fi
  if [ -n "$STARTED_COMPOSE" ]; then
    $STARTED_COMPOSE down -v >/dev/null 2>&1 || true
    note "stopped the compose services"
  fi
}
trap cleanup EXIT

# ------------------------------------------------------------------ PostgreSQL

pg_bin_dir() {  # PG_BIN=<dir of initdb and pg_ctl> chooses; otherwise PATH, then the usual places
  local initdb candidates candidate
  if [ -n "${PG_BIN:-}" ]; then
    candidates=$PG_BIN
  else
    initdb=$(command -v initdb 2>/dev/null || true)
    candidates="${initdb:+$(dirname "$(readlink -f "$initdb")")}
      $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV)
      $(ls -d /opt/homebrew/opt/postgresql@*/bin /usr/local/opt/postgresql@*/bin 2>/dev/null | sort -rV)"
  fi
  for candidate in $candidates; do
    if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

# PostgreSQL refuses to run as root: as root, the throwaway server runs as the `postgres` user (or nobody).
as_pg_user() {
  if [ -n "$STARTED_PG_USER" ]; then runuser -u "$STARTED_PG_USER" -- "$@"; else "$@"; fi
}

start_throwaway_postgres() {
  local bin port data
  bin=$(pg_bin_dir) || return 1
  port=$(free_port)
  data=$DEMO_DIR/postgres
  if [ "$(id -u)" = 0 ]; then
    STARTED_PG_USER=$(id -un postgres 2>/dev/null || echo nobody)
    if ! runuser -u "$STARTED_PG_USER" -- test -x "$DEMO_DIR"; then  # .demo is not reachable for that user
      data=$(mktemp -d /tmp/cerniq-demo-postgres.XXXXXX)
    fi
  fi
  rm -rf "$data" && mkdir -p "$data"
  [ -n "$STARTED_PG_USER" ] && chown "$STARTED_PG_USER" "$data"
  chmod 700 "$data"
  STARTED_PG_DIR=$data STARTED_PG_BIN=$bin
  note "starting a throwaway PostgreSQL ($bin) on 127.0.0.1:$port, data in $data"
  as_pg_user "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$DEMO_DIR/initdb.log" 2>&1
  as_pg_user "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c fsync=off -c full_page_writes=off" start >/dev/null
  DATABASE_URL=postgresql://postgres@127.0.0.1:$port/$DEMO_DB
}

# ------------------------------------------------------------------ Redis

start_throwaway_redis() {  # REDIS_SERVER=<path of redis-server> chooses; otherwise PATH
  local port server
  server=$(command -v "${REDIS_SERVER:-redis-server}" 2>/dev/null) || return 1
  port=$(free_port)
  note "starting a throwaway Redis ($server) on 127.0.0.1:$port"
  rm -f "$DEMO_DIR/redis.pid"
  "$server" --bind 127.0.0.1 --port "$port" --save "" --appendonly no --daemonize yes \
    --dir "$DEMO_DIR" --pidfile "$DEMO_DIR/redis.pid" --logfile "$DEMO_DIR/redis.log" >/dev/null
  for _ in $(seq 1 50); do [ -s "$DEMO_DIR/redis.pid" ] && break; sleep 0.1; done
  STARTED_REDIS_PID=$(cat "$DEMO_DIR/redis.pid")
  REDIS_URL=redis://127.0.0.1:$port/0
}

# ------------------------------------------------------------------ Docker

start_compose() {  # $@: "postgres" and/or "redis"
  local pg_port redis_port
  command -v "${DOCKER:-docker}" >/dev/null 2>&1 && "${DOCKER:-docker}" info >/dev/null 2>&1 || return 1
  pg_port=$(free_port) redis_port=$(free_port)
  note "starting $* with Docker Compose (compose.yaml)"
  STARTED_COMPOSE="bash $ROOT/scripts/compose.sh -p cerniq-demo -f $ROOT/compose.yaml"
  export POSTGRES_PASSWORD=demo POSTGRES_HOST_PORT=$pg_port REDIS_HOST_PORT=$redis_port
  $STARTED_COMPOSE up -d --wait "$@" >/dev/null
  for service in "$@"; do
    case $service in
      postgres) DATABASE_URL=postgresql://postgres:demo@127.0.0.1:$pg_port/$DEMO_DB ;;
      redis) REDIS_URL=redis://127.0.0.1:$redis_port/0 ;;
    esac
  done
}

cannot_start() {
  cat >&2 <<TEXT

The demo needs PostgreSQL (15 or newer) and Redis (6.2 or newer), and could not reach or start $1:
  - DATABASE_URL / REDIS_URL were not set, or did not answer
  - no local server binaries were found (initdb and pg_ctl for PostgreSQL, redis-server for Redis)
  - no Docker engine answered

Install one of these, then run \`make demo\` again:
  Debian / Ubuntu:   sudo apt-get install postgresql redis-server
  Fedora / RHEL:     sudo dnf install postgresql-server redis
  macOS (Homebrew):  brew install postgresql@15 redis
  Docker Engine:     https://docs.docker.com/engine/install/  (the demo then runs compose.yaml's services)
or point it at servers you already run:
  DATABASE_URL=postgresql://USER@HOST:5432/cerniq_demo REDIS_URL=redis://HOST:6379/0 make demo
TEXT
  exit 1
}

kept_message() {
  cat <<TEXT

The demo's services are still running (DEMO_KEEP=1). Look around with:
  export DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL
  .venv/bin/python -m src.ops status
Stop them with:
TEXT
  [ -n "$STARTED_PG_DIR" ] && echo "  ${STARTED_PG_USER:+runuser -u $STARTED_PG_USER -- }$STARTED_PG_BIN/pg_ctl -D $STARTED_PG_DIR stop"
  [ -n "$STARTED_REDIS_PID" ] && echo "  kill $STARTED_REDIS_PID   # redis-server"
  [ -n "$STARTED_COMPOSE" ] && echo "  $STARTED_COMPOSE down -v"
  return 0
}

# ------------------------------------------------------------------ main

DATABASE_URL=$(configured DATABASE_URL)
REDIS_URL=$(configured REDIS_URL)
pg_source="" redis_source=""

if [ -n "$DATABASE_URL" ] && probe postgres "$DATABASE_URL" --create-database; then
  pg_source="DATABASE_URL"
elif [ -n "$DATABASE_URL" ]; then
  note "DATABASE_URL does not answer: using a throwaway PostgreSQL instead"
fi
if [ -n "$REDIS_URL" ] && probe redis "$REDIS_URL"; then
  redis_source="REDIS_URL"
elif [ -n "$REDIS_URL" ]; then
  note "REDIS_URL does not answer: using a throwaway Redis instead"
fi
if [ -z "$pg_source" ] && start_throwaway_postgres; then pg_source="throwaway"; fi
if [ -z "$redis_source" ] && start_throwaway_redis; then redis_source="throwaway"; fi
missing=()
[ -z "$pg_source" ] && missing+=(postgres)
[ -z "$redis_source" ] && missing+=(redis)
if [ ${#missing[@]} -gt 0 ]; then
  start_compose "${missing[@]}" || cannot_start "$(echo "${missing[*]}" | sed 's/postgres/PostgreSQL/; s/redis/Redis/; s/ / and /')"
fi
probe postgres "$DATABASE_URL" --create-database || { echo "PostgreSQL at $DATABASE_URL does not answer" >&2; exit 1; }
probe redis "$REDIS_URL" || { echo "Redis at $REDIS_URL does not answer" >&2; exit 1; }
export DATABASE_URL REDIS_URL

note "migrating (alembic upgrade head)"
.venv/bin/alembic upgrade head >"$DEMO_DIR/migrate.log" 2>&1 || { cat "$DEMO_DIR/migrate.log" >&2; exit 1; }

echo
"$PY" -m src.ops demo --worker-log "$DEMO_DIR/worker.log"
echo
echo "The worker's log: $DEMO_DIR/worker.log"
if [ "$pg_source" = DATABASE_URL ] && [ "$redis_source" = REDIS_URL ]; then
  echo "The demo tenant stays in your database. Look around with:"
  echo "  .venv/bin/python -m src.ops status      # with the same DATABASE_URL and REDIS_URL"
fi
