#!/usr/bin/env bash
# Runs a command against a fresh, throw-away stack, stopped afterwards pass or
# fail:  scripts/with-stack.sh NAME PORT_PREFIX command [args...]
# The stack lives in .stack/NAME on ports PORT_PREFIX+xxxx; the command sees
# its URLs as DATABASE_URL, KAFKA_BROKERS, CLICKHOUSE_URL and STACK_DIR.
# When the command succeeds the stack directory (hundreds of MB) is removed;
# when it fails it is kept for its logs, and the last line says so.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=$1 prefix=$2; shift 2
export STACK_PORT_PREFIX=$prefix STACK_DIR="$ROOT/.stack/$name"
bash "$ROOT/scripts/stack.sh" destroy >/dev/null 2>&1 || true
finish() {
  local rc=$?
  if [ "$rc" = 0 ]; then
    bash "$ROOT/scripts/stack.sh" destroy
  else
    bash "$ROOT/scripts/stack.sh" down
    echo "[stack] kept $STACK_DIR for its logs (failed with exit $rc); remove it with: STACK_DIR=$STACK_DIR bash scripts/stack.sh destroy" >&2
  fi
  exit "$rc"
}
trap finish EXIT
bash "$ROOT/scripts/stack.sh" up
# shellcheck disable=SC1091
source "$STACK_DIR/env"
"$@"
