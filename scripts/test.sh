#!/usr/bin/env bash
# The test command (README): builds, then runs unit and integration tests
# against real services. Unless WALBRIDGE_TEST_DATABASE_URL,
# WALBRIDGE_TEST_KAFKA_BROKERS and WALBRIDGE_TEST_CLICKHOUSE_URL are all set,
# it starts a fresh stack of its own (.stack/test-2, ports 2xxxx; another
# digit in WALBRIDGE_TEST_PORT_PREFIX gives another stack), isolated from a
# developer's stack, and stops it when done, pass or fail.
#
#   scripts/test.sh                 all suites
#   scripts/test.sh dist/test/unit/lsn.test.js ...   chosen compiled files
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

npx tsc -p tsconfig.json

if [ -n "${WALBRIDGE_TEST_DATABASE_URL:-}" ] && [ -n "${WALBRIDGE_TEST_KAFKA_BROKERS:-}" ] && [ -n "${WALBRIDGE_TEST_CLICKHOUSE_URL:-}" ]; then
  echo "[test] using the services named in WALBRIDGE_TEST_*"
else
  export STACK_PORT_PREFIX=${WALBRIDGE_TEST_PORT_PREFIX:-2}
  export STACK_DIR="$ROOT/.stack/test-$STACK_PORT_PREFIX"
  bash scripts/stack.sh down >/dev/null 2>&1 || true
  rm -rf "$STACK_DIR"
  trap 'bash scripts/stack.sh down' EXIT
  bash scripts/stack.sh up
  # shellcheck disable=SC1091
  source "$STACK_DIR/env"
  export WALBRIDGE_TEST_DATABASE_URL=$DATABASE_URL WALBRIDGE_TEST_KAFKA_BROKERS=$KAFKA_BROKERS WALBRIDGE_TEST_CLICKHOUSE_URL=$CLICKHOUSE_URL
  export WALBRIDGE_TEST_STACK_DIR=$STACK_DIR
fi
# The code under test must not fall back to a developer's stack by accident.
unset DATABASE_URL KAFKA_BROKERS CLICKHOUSE_URL

if [ $# -eq 0 ]; then
  set -- dist/test/unit/*.test.js dist/test/integration/*.test.js dist/test/e2e/*.test.js dist/test/faults/*.test.js
fi
files=()
for f in "$@"; do [ -e "$f" ] && files+=("$f"); done
node --test --test-concurrency=1 --test-timeout=600000 "${files[@]}"
