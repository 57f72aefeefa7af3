#!/usr/bin/env bash
# The test command (`npm test`): the build, every vitest test, then the plain summary line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tmp
# Every process a test starts (services, launcher, tools) runs its bundle, as in production.
node scripts/build.mjs --quiet || exit 1
export LLMGW_RUN_FROM=dist
report=.tmp/vitest-report.json
rm -f "$report"
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
rc=$?
node scripts/test-summary.mjs "$report" || rc=1
exit $rc
