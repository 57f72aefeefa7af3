import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONTENT_DETECTORS, contentPolicySchema, type ContentDetector } from '@llmgw/config';
import { compilePolicy, ibanValid, luhnValid, policyFor, scanTexts } from './content-policy.js';

const LABELLED: { text: string; labels: ContentDetector[] }[] = parse(readFileSync(new URL('../../../test/fixtures/pii.labelled.yaml', import.meta.url), 'utf8'));
const everyDetector = (action: 'block' | 'redact' | 'redact_logs') => contentPolicySchema.parse({ detectors: Object.fromEntries(CONTENT_DETECTORS.map((d) => [d, action])) });

describe('content policy detectors', () => {
  it('find the labelled set\'s PII and secrets with precision and recall of at least 0.95 per detector', () => {
    expect(LABELLED.length).toBeGreaterThanOrEqual(100);
    const policy = compilePolicy('all', everyDetector('redact'));
    const tally = Object.fromEntries(CONTENT_DETECTORS.map((d) => [d, { tp: 0, fp: 0, fn: 0 }]));
    const misses: string[] = [];
    for (const { text, labels } of LABELLED) {
      const found = new Set(scanTexts(policy, [text]).enforcements.map((e) => e.rule));
      for (const d of CONTENT_DETECTORS) {
        const t = tally[d] as { tp: number; fp: number; fn: number };
        const want = labels.includes(d);
        if (want && found.has(d)) t.tp++;
        else if (found.has(d)) t.fp++;
        else if (want) t.fn++;
        if (want !== found.has(d)) misses.push(`${d} ${want ? 'missed' : 'false positive'}: ${JSON.stringify(text)}`);
      }
    }
    const rows = CONTENT_DETECTORS.map((d) => {
      const { tp, fp, fn } = tally[d] as { tp: number; fp: number; fn: number };
      return { detector: d, positives: tp + fn, precision: tp / (tp + fp || 1), recall: tp / (tp + fn || 1) };
    });
    console.log(
      [`labelled strings: ${LABELLED.length}`, 'detector     positives  precision  recall', ...rows.map((r) => `${r.detector.padEnd(12)} ${String(r.positives).padStart(9)}  ${r.precision.toFixed(3).padStart(9)}  ${r.recall.toFixed(3).padStart(6)}`), ...misses].join('\n'),
    );
    for (const r of rows) {
      expect(r.positives, r.detector).toBeGreaterThanOrEqual(6);
      expect(r.precision, r.detector).toBeGreaterThanOrEqual(0.95);
      expect(r.recall, r.detector).toBeGreaterThanOrEqual(0.95);
    }
  });

  it('check cards by Luhn and IBANs by mod 97', () => {
    expect(luhnValid('4111111111111111')).toBe(true);
    expect(luhnValid('4111111111111112')).toBe(false);
    expect(ibanValid('GB82 WEST 1234 5698 7654 32')).toBe(true);
    expect(ibanValid('GB82 WEST 1234 5698 7654 33')).toBe(false);
  });
});

describe('scanTexts', () => {
  it('redacts with placeholders stable within a request: the same value, in any message, is the same placeholder', () => {
    const policy = compilePolicy('p', contentPolicySchema.parse({ detectors: { email: 'redact', phone: 'redact_logs' } }));
    const r = scanTexts(policy, ['mail a@x.com or b@x.com', 'again a@x.com, or call +1 415 555 0132']);
    expect(r.texts).toEqual(['mail [EMAIL_1] or [EMAIL_2]', 'again [EMAIL_1], or call +1 415 555 0132']);
    expect(r.logTexts).toEqual(['mail [EMAIL_1] or [EMAIL_2]', 'again [EMAIL_1], or call [PHONE_1]']);
    expect(r.enforcements).toEqual([
      { rule: 'email', action: 'redact', matches: 3 },
      { rule: 'phone', action: 'redact_logs', matches: 1 },
    ]);
    expect(r.blockedBy).toBeUndefined();
  });

  it('names the first blocking rule that matched, and deny patterns match case-insensitively', () => {
    const policy = compilePolicy('p', contentPolicySchema.parse({ detectors: { email: 'redact' }, deny: [{ name: 'codename', pattern: 'project\\s+bluebird' }] }));
    const r = scanTexts(policy, ['a@x.com asks about Project  Bluebird']);
    expect(r.blockedBy).toBe('codename');
    expect(r.logTexts).toEqual(['[EMAIL_1] asks about [CODENAME_1]']);
    expect(scanTexts(policy, ['nothing here']).enforcements).toEqual([]);
  });

  it('lets a card number be a card, not a phone number too', () => {
    const r = scanTexts(compilePolicy('all', everyDetector('redact')), ['4111 1111 1111 1111']);
    expect(r.texts).toEqual(['[CARD_1]']);
  });
});

describe('policyFor', () => {
  const cfg = {
    content_policies: { strict: contentPolicySchema.parse({ detectors: { card: 'block' } }), loose: contentPolicySchema.parse({ detectors: { card: 'redact_logs' } }) },
    tenants: { acme: { content_policy: 'strict', route_policies: { internal: 'loose' } }, globex: { route_policies: {} } },
  };

  it('takes the route\'s override, else the tenant\'s policy, else none; compiled once per config object', () => {
    expect(policyFor(cfg, 'acme', 'internal')?.name).toBe('loose');
    expect(policyFor(cfg, 'acme', 'support')?.name).toBe('strict');
    expect(policyFor(cfg, 'acme', 'support')).toBe(policyFor(cfg, 'acme', ''));
    expect(policyFor(cfg, 'globex', 'support')).toBeUndefined();
    expect(policyFor(cfg, 'nobody', 'support')).toBeUndefined();
  });

  it('finds nothing for names of Object.prototype\'s properties', () => {
    expect(policyFor(cfg, 'constructor', 'x')).toBeUndefined();
    expect(policyFor(cfg, 'acme', 'constructor')?.name).toBe('strict');
    expect(policyFor(cfg, 'acme', 'toString')?.name).toBe('strict');
  });
});
