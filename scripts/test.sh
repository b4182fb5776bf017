#!/usr/bin/env bash
# Sets the machine up and runs every check: format and lint, type check, unit tests beside the
# code, end-to-end tests in test/.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$STRATA_ROOT"

echo "== format and lint (biome)"
npx --no-install biome ci .

echo "== type check"
npx --no-install tsc --noEmit -p .

echo "== tests"
node --test --test-concurrency=2 --test-timeout=300000 \
  'src/**/*.test.ts' 'test/**/*.test.ts' "$@"
