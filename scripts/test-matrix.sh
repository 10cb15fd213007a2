#!/usr/bin/env bash
# The version matrix (`npm run test:matrix`, run by CI after `npm test`, which
# covers the defaults: Debian's PostgreSQL 15 and Kafka 4.1). Runs the cdc
# integration tests and the seed end-to-end test (the many-tables one runs once, in npm test) on each other PostgreSQL major and
# on Kafka 3.9, each entry on a fresh stack of its own, one after the other.
# Kafka 3.9 rides along with PostgreSQL 16 rather than taking an entry of its
# own, which keeps CI (npm test + matrix) under 30 minutes; `kafka3.9` (with
# PostgreSQL 15) and `pg16-kafka4.1` remain as entries to run by hand.
# Every server is fetched once into .stack-cache/ (scripts/install-stack.sh)
# and reused. Prints each entry's result and time; exits 1 when any failed.
#
#   scripts/test-matrix.sh                 every default entry
#   scripts/test-matrix.sh pg13 kafka3.9   chosen entries
#
# WALBRIDGE_TEST_PORT_PREFIX  port digit of the first entry's stack (default 2)
# WALBRIDGE_MATRIX_JOBS        entries run at once (default 1), each on a stack
#                              of its own with the next port digit (2, 3, …):
#                              most of an entry's time is waiting (process
#                              starts, group joins, restarts), so CI runs two
# Each entry's full output is in .stack/matrix-<entry>.log; a failed entry's is
# also printed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# Each entry picks its own servers: directories exported for one stack (a
# sourced .stack/*/env sets PG_BIN and KAFKA_LIBS) would run every entry on
# that stack's PostgreSQL and Kafka, whatever the entry says.
unset PG_BIN KAFKA_LIBS

ALL_ENTRIES=(pg13 pg14 pg16-kafka3.9 pg17)
# entry → "PostgreSQL-major Kafka-version"
versions_of() {
  case "$1" in
    pg13) echo "13 4.1" ;;
    pg14) echo "14 4.1" ;;
    pg15) echo "15 4.1" ;;
    pg16-kafka3.9) echo "16 3.9" ;;
    pg16-kafka4.1) echo "16 4.1" ;;
    pg17) echo "17 4.1" ;;
    kafka3.9) echo "15 3.9" ;;
    *) echo "[matrix] unknown entry '$1' (known: ${ALL_ENTRIES[*]} pg15 pg16-kafka4.1 kafka3.9)" >&2; exit 2 ;;
  esac
}
entries=("$@")
[ ${#entries[@]} -gt 0 ] || entries=("${ALL_ENTRIES[@]}")
prefix=${WALBRIDGE_TEST_PORT_PREFIX:-2}

[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc -p tsconfig.json
# The cdc tests and the seed walkthrough, less those that do not depend on the
# server's version: column rules and topic routing live in cdc's own decoder,
# origin names in its own naming (npm test runs them on the default version).
version_independent=" cdc-personal-data cdc-many-tables cdc-origin-names "
files=()
for f in dist/test/integration/cdc-*.test.js; do
  name=$(basename "$f" .test.js)
  [[ "$version_independent" == *" $name "* ]] || files+=("$f")
done
files+=(dist/test/e2e/seed-walkthrough.test.js)
mkdir -p .stack

for entry in "${entries[@]}"; do
  read -r pg kafka <<<"$(versions_of "$entry")"
  STACK_PG_VERSION=$pg STACK_KAFKA_VERSION=$kafka bash scripts/install-stack.sh | grep -v 'all present' || true
done

jobs=${WALBRIDGE_MATRIX_JOBS:-1}
[[ "$jobs" =~ ^[1-9]$ ]] && [ $((prefix + jobs - 1)) -le 5 ] \
  || { echo "[matrix] WALBRIDGE_MATRIX_JOBS=$jobs with port digit $prefix needs digits up to $((prefix + jobs - 1)); the highest is 5" >&2; exit 2; }

# One entry on the stack of port digit $2; its summary line goes to .stack/matrix-<entry>.result.
run_entry() {
  local entry=$1 digit=$2 pg kafka result started=$SECONDS
  read -r pg kafka <<<"$(versions_of "$entry")"
  local log=.stack/matrix-$entry.log
  printf '[matrix] %s: PostgreSQL %s, Kafka %s (ports %sxxxx) ...\n' "$entry" "$pg" "$kafka" "$digit"
  if STACK_PG_VERSION=$pg STACK_KAFKA_VERSION=$kafka WALBRIDGE_TEST_CONCURRENCY=1 \
      bash scripts/with-stack.sh "matrix-$entry" "$digit" bash scripts/test.sh --on-stack "${files[@]}" >"$log" 2>&1; then
    result=passed
  else
    result=FAILED
    cat "$log"
  fi
  # Each run of node's test runner closes with "# pass N" and "# fail N".
  local counts; counts=$(awk '/^# (pass|fail) /{n[$2]+=$3; seen=1} END{if (seen) printf "%d pass, %d fail", n["pass"], n["fail"]}' "$log")
  printf '%-13s PostgreSQL %-3s Kafka %-4s %-7s %4ds  (%s)\n' "$entry" "$pg" "$kafka" "$result" $((SECONDS - started)) "${counts:-no test summary}" \
    | tee ".stack/matrix-$entry.result" | sed 's/^/[matrix] /'
}

# Up to $jobs entries at once, each holding one port digit until it ends.
declare -A running=()  # pid → port digit
# Stopped (Ctrl-C, a CI cancel): stop the running entries too; with-stack.sh stops their stacks.
trap 'kill "${!running[@]}" 2>/dev/null; wait; exit 130' INT TERM
for entry in "${entries[@]}"; do
  while [ ${#running[@]} -ge "$jobs" ]; do
    wait -n || true
    for pid in "${!running[@]}"; do kill -0 "$pid" 2>/dev/null || unset "running[$pid]"; done
  done
  free=$prefix
  while [[ " ${running[*]} " == *" $free "* ]]; do free=$((free + 1)); done
  rm -f ".stack/matrix-$entry.result"
  run_entry "$entry" "$free" &
  running[$!]=$free
done
wait

results=()
failed=0
for entry in "${entries[@]}"; do
  line=$(cat ".stack/matrix-$entry.result" 2>/dev/null || echo "$entry ended without a result")
  results+=("$line")
  [[ "$line" == *" passed "* ]] || failed=$((failed + 1))
done

printf '\n[matrix] results (cdc integration + end-to-end tests per version):\n'
printf '  %s\n' "${results[@]}"
echo "matrix: $(( ${#entries[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
