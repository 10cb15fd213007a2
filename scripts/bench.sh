#!/usr/bin/env bash
# `npm run bench [-- --quick]`: builds, then runs scripts/bench/main.ts on a
# fresh stack of its own (.stack/bench, ports 5xxxx), stopped afterwards.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc -p tsconfig.json
bash scripts/install-stack.sh
exec bash scripts/with-stack.sh bench 5 node dist/scripts/bench/main.js "$@"
