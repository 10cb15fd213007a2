#!/usr/bin/env bash
# `npm run chaos [-- --minutes N ...]`: builds, then runs scripts/chaos/main.ts
# on a fresh stack of its own with three Kafka brokers (.stack/chaos, ports
# 4xxxx), stopped afterwards (kept, with the run's logs in .stack/chaos/chaos,
# when the run fails). CI runs a short one: --minutes 3.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc -p tsconfig.json
bash scripts/install-stack.sh
STACK_KAFKA_BROKERS=3 exec bash scripts/with-stack.sh chaos 4 node dist/scripts/chaos/main.js "$@"
