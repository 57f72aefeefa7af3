#!/usr/bin/env bash
# The test command (`npm test`): every vitest test, then the plain summary line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tmp
report=.tmp/vitest-report.json
rm -f "$report"
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
rc=$?
node scripts/test-summary.mjs "$report" || rc=1
exit $rc
