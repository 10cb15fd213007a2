#!/usr/bin/env bash
# `npm run demo`: the seed's walkthrough (shared/seed/README.en.md) with the
# new commands, on a fresh machine included. Prepares what is missing, says
# what it does, then runs scripts/demo.ts. Leaves the stack running for you to
# explore; `npm run stack:down` stops it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
say() { printf '\n== %s\n' "$*"; }

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  say "installing Node dependencies and building (npm ci, whose prepare step runs tsc)"
  npm ci --no-audit --no-fund
else
  say "building (tsc)"
  npx tsc -p tsconfig.json
fi

local_stack_installed() {
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && command -v clickhouse-server >/dev/null 2>&1 \
    && compgen -G "$ROOT/.stack-cache/kafka-libs-*/kafka_2.13-*.jar" >/dev/null
}

if ! local_stack_installed && docker info >/dev/null 2>&1; then
  say "a Docker engine answers: starting the stack with Docker Compose (docker-compose.yml)"
  docker compose up -d --wait
else
  if ! local_stack_installed; then
    say "installing the local stack (PostgreSQL, ClickHouse from Debian; Kafka jars from Maven Central)"
  fi
  bash scripts/install-stack.sh
  say "starting the local stack (scripts/stack.sh up)"
  bash scripts/stack.sh up
fi

node dist/scripts/demo.js "$@"
