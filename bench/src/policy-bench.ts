import { contentPolicySchema, CONTENT_DETECTORS } from '@llmgw/config';
import { compilePolicy, scanTexts } from '@llmgw/edge';
import { countTokens } from '@llmgw/tokens';
import { percentile, table } from './stats.js';

/**
 * `npm run bench -- policy`: the edge's content-policy scan alone, in process: every detector and
 * two deny patterns over a prompt of about 2,000 tokens, clean or with a dozen matches to redact.
 * Each scan is timed on its own after a warm-up.
 */
const SCANS = Number(process.env.BENCH_POLICY_SCANS ?? 20_000);
const WARM_UP = 2_000;
const TARGET_TOKENS = 2_000;

const PROSE =
  'The quarterly report covers revenue, churn and the support backlog for 2024-03-31. Customers in region 7 asked about invoice 88213 and the upgrade path; ' +
  'the team shipped version 4.2.1 on 12/03/2025 and closed 143 tickets. Please summarise the findings, list three risks and propose next steps for the roadmap. ';
const PII = 'Contact jane.doe@example.com or +1 415 555 0132, card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, ssn 123-45-6789. ';

function prompt(withPii: boolean): string {
  let text = '';
  let i = 0;
  while (countTokens(text) < TARGET_TOKENS) text += i++ % 6 === 3 && withPii ? PII : PROSE;
  return text;
}

const policy = compilePolicy(
  'bench',
  contentPolicySchema.parse({
    detectors: Object.fromEntries(CONTENT_DETECTORS.map((d) => [d, 'redact'])),
    deny: [
      { name: 'codename', pattern: 'project\\s+bluebird' },
      { name: 'internal_host', pattern: '\\b[a-z0-9-]+\\.corp\\.internal\\b' },
    ],
  }),
);

function measure(text: string): { micros: number[]; matches: number } {
  const matches = scanTexts(policy, [text]).enforcements.reduce((n, e) => n + e.matches, 0);
  for (let i = 0; i < WARM_UP; i++) scanTexts(policy, [text]);
  const micros: number[] = [];
  for (let i = 0; i < SCANS; i++) {
    const t = process.hrtime.bigint();
    scanTexts(policy, [text]);
    micros.push(Number(process.hrtime.bigint() - t) / 1_000);
  }
  return { micros: micros.sort((a, b) => a - b), matches };
}

const rows = [
  ['clean prompt', prompt(false)],
  ['prompt with PII', prompt(true)],
].map(([name, text]) => {
  const { micros, matches } = measure(text as string);
  return [name as string, countTokens(text as string), (text as string).length, matches, (percentile(micros, 50) / 1_000).toFixed(3), (percentile(micros, 95) / 1_000).toFixed(3), (percentile(micros, 99) / 1_000).toFixed(3)];
});
process.stdout.write(`\n## Content policy scan: ${CONTENT_DETECTORS.length} detectors and 2 deny patterns, in process, ${SCANS.toLocaleString('en')} scans each (target: p50 ≤ 0.2 ms)\n\n`);
process.stdout.write(`${table(['prompt', 'tokens', 'chars', 'matches', 'p50 ms', 'p95 ms', 'p99 ms'], rows)}\n`);
