#!/usr/bin/env bash
# The test command (README): builds, then runs unit, integration, end-to-end
# and fault tests against real services. Unless WALBRIDGE_TEST_DATABASE_URL,
# WALBRIDGE_TEST_KAFKA_BROKERS and WALBRIDGE_TEST_CLICKHOUSE_URL are all set,
# it starts a fresh stack of its own (.stack/test-2, ports 2xxxx; another
# digit in WALBRIDGE_TEST_PORT_PREFIX gives another stack), isolated from a
# developer's stack, and stops it when done, pass or fail.
#
#   scripts/test.sh                                  all suites
#   scripts/test.sh dist/test/unit/lsn.test.js ...   chosen compiled files
#
# STACK_KAFKA_BROKERS=3 STACK_CLICKHOUSE_REPLICAS=2 give the stack it starts
# the cluster shape (`npm run test:cluster` runs test/cluster on such a stack,
# prefix 3 unless WALBRIDGE_TEST_PORT_PREFIX says otherwise); its cluster
# reaches the tests as WALBRIDGE_TEST_CLICKHOUSE_CLUSTER and _REPLICA_URLS.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ "${1:-}" = "--on-stack" ]; then  # re-entered by scripts/with-stack.sh below
  shift
  export WALBRIDGE_TEST_DATABASE_URL=$DATABASE_URL WALBRIDGE_TEST_KAFKA_BROKERS=$KAFKA_BROKERS
  export WALBRIDGE_TEST_CLICKHOUSE_URL=$CLICKHOUSE_URL WALBRIDGE_TEST_STACK_DIR=$STACK_DIR
  export WALBRIDGE_TEST_CLICKHOUSE_CLUSTER=${CLICKHOUSE_CLUSTER:-} WALBRIDGE_TEST_CLICKHOUSE_REPLICA_URLS=${CLICKHOUSE_REPLICA_URLS:-}
else
  [ -d node_modules ] || npm ci --no-audit --no-fund
  npx tsc -p tsconfig.json
fi

if [ -z "${WALBRIDGE_TEST_DATABASE_URL:-}" ] || [ -z "${WALBRIDGE_TEST_KAFKA_BROKERS:-}" ] || [ -z "${WALBRIDGE_TEST_CLICKHOUSE_URL:-}" ]; then
  prefix=${WALBRIDGE_TEST_PORT_PREFIX:-2}
  exec bash scripts/with-stack.sh "test-$prefix" "$prefix" bash "$0" --on-stack "$@"
fi

if [ $# -eq 0 ]; then
  set -- dist/test/unit/*.test.js dist/test/integration/*.test.js dist/test/e2e/*.test.js dist/test/faults/*.test.js
fi
# Two files at a time: most of a test's time is waiting (process starts,
# group joins, outages it causes), so the second core is not idle. Files that
# stop or restart the shared stack's own servers run afterwards, alone (and one more, below).
# WALBRIDGE_TEST_CONCURRENCY=1 runs every file alone (the matrix does: it
# runs two entries at once).
concurrency=${WALBRIDGE_TEST_CONCURRENCY:-2}
# cdc-values also runs alone: it holds transactions open across a slot's creation in a set order,
# and slot creation waits for every transaction of the cluster, so another file's transaction moves
# the consistent point past one the test commits only after cdc exits (a deadlock until the timeout,
# holding back every other slot creation: three files failed together in a CI run).
# cdc-invisible-commit sets synchronous_standby_names, which holds every commit of the cluster.
stack_disruptive=" cdc-outages sink-clickhouse-down cdc-values cdc-invisible-commit "
shared=() alone=()
for f in "$@"; do
  [ -e "$f" ] || continue
  if [[ "$stack_disruptive" == *" $(basename "$f" .test.js) "* ]]; then alone+=("$f"); else shared+=("$f"); fi
done
# The code under test must not fall back to a developer's stack (or its Kafka security, ClickHouse CA
# or personal-data settings, or a cluster stack's CLICKHOUSE_CLUSTER) by accident.
run_tests() {
  env -u DATABASE_URL -u KAFKA_BROKERS -u CLICKHOUSE_URL -u CLICKHOUSE_CLUSTER -u CLICKHOUSE_REPLICA_URLS -u KAFKA_SSL -u KAFKA_SSL_CA -u KAFKA_SSL_CERT -u KAFKA_SSL_KEY \
    -u KAFKA_SSL_VERIFY_HOSTNAME -u KAFKA_SASL_MECHANISM -u KAFKA_SASL_USERNAME -u KAFKA_SASL_PASSWORD -u KAFKA_SASL_PASSWORD_FILE \
    -u CLICKHOUSE_CA_FILE -u SINK_GROUP -u CDC_EXCLUDE_COLUMNS -u CDC_HASH_COLUMNS -u CDC_HASH_KEY -u CDC_HASH_KEY_FILE \
    node --test --test-timeout=600000 "$@"
}
[ $((${#shared[@]} + ${#alone[@]})) -gt 0 ] || { echo "[test] none of these test files exists (run through npm test, which builds dist/ first): $*" >&2; exit 2; }
status=0
[ ${#shared[@]} -eq 0 ] || run_tests --test-concurrency="$concurrency" "${shared[@]}" || status=$?
[ ${#alone[@]} -eq 0 ] || run_tests --test-concurrency=1 "${alone[@]}" || status=$?
exit "$status"
