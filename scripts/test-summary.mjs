// Prints vitest's JSON report as one line, "N passed, N failed"; fails when no test ran.
import { readFileSync } from 'node:fs';

let report;
try {
  report = JSON.parse(readFileSync(process.argv[2], 'utf8'));
} catch {
  process.stdout.write('0 passed, 1 failed\n');
  process.exit(1);
}
const passed = report.numPassedTests ?? 0;
// A file that fails to load has no failed test in it but is a failure all the same.
const brokenFiles = (report.testResults ?? []).filter((f) => f.status === 'failed' && f.assertionResults.length === 0).length;
const failed = (report.numFailedTests ?? 0) + brokenFiles;
process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exit(passed === 0 || failed > 0 ? 1 : 0);
