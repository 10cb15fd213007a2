#!/usr/bin/env bash
# Runs a command against a fresh, throw-away stack, stopped afterwards pass or
# fail:  scripts/with-stack.sh NAME PORT_PREFIX command [args...]
# The stack lives in .stack/NAME on ports PORT_PREFIX+xxxx; the command sees
# its URLs as DATABASE_URL, KAFKA_BROKERS, CLICKHOUSE_URL and STACK_DIR.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=$1 prefix=$2; shift 2
export STACK_PORT_PREFIX=$prefix STACK_DIR="$ROOT/.stack/$name"
bash "$ROOT/scripts/stack.sh" down >/dev/null 2>&1 || true
rm -rf "$STACK_DIR"
trap 'bash "$ROOT/scripts/stack.sh" down' EXIT
bash "$ROOT/scripts/stack.sh" up
# shellcheck disable=SC1091
source "$STACK_DIR/env"
"$@"
