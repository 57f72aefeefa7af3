import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONTENT_DETECTORS, contentPolicySchema, type ContentDetector } from '@llmgw/config';
import { compilePolicy, ibanValid, luhnValid, policyFor, scanTexts, STREAM_HOLD_CHARS, StreamPolicer } from './content-policy.js';

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

  describe('tool calls\' arguments (JSON texts)', () => {
    const policy = compilePolicy('p', contentPolicySchema.parse({ detectors: { email: 'redact', phone: 'redact_logs', card: 'block' } }));

    it('redacts inside string values only, nested objects and arrays too, and the JSON stays valid', () => {
      const args = JSON.stringify({ to: 'write to a@x.com', cc: ['b@x.com', { bcc: 'a@x.com' }], count: 2, urgent: true, note: null });
      const r = scanTexts(policy, [{ json: args }]);
      expect(JSON.parse(r.texts[0] as string)).toEqual({ to: 'write to [EMAIL_1]', cc: ['[EMAIL_2]', { bcc: '[EMAIL_1]' }], count: 2, urgent: true, note: null });
      expect(r.enforcements).toEqual([{ rule: 'email', action: 'redact', matches: 3 }]);
    });

    it('shares placeholders with the contents scanned beside them', () => {
      const r = scanTexts(policy, ['mail b@x.com and a@x.com', { json: '{"to": "a@x.com"}' }, 'again a@x.com']);
      expect(r.texts).toEqual(['mail [EMAIL_1] and [EMAIL_2]', '{"to": "[EMAIL_2]"}', 'again [EMAIL_2]']);
    });

    it('keeps the rest of the arguments as they were, byte for byte: keys, numbers, spacing', () => {
      const args = '{ "a@x.com": 1, "id": 12345678901234567890,\n  "to": "b@x.com" }';
      expect(scanTexts(policy, [{ json: args }]).texts).toEqual(['{ "a@x.com": 1, "id": 12345678901234567890,\n  "to": "[EMAIL_1]" }']);
      const plain = '{ "q": "weather",  "n": 3 }';
      expect(scanTexts(policy, [{ json: plain }]).texts).toEqual([plain]);
    });

    it('finds a match written with JSON escapes, and sends a log-only match as it is', () => {
      expect(scanTexts(policy, [{ json: '{"to":"a\\u0040x.com \\"quoted\\""}' }]).texts).toEqual(['{"to":"[EMAIL_1] \\"quoted\\""}']);
      const r = scanTexts(policy, [{ json: '{ "call": "+1 415 555 0132" }' }]);
      expect(r.texts).toEqual(['{ "call": "+1 415 555 0132" }']);
      expect(r.logTexts).toEqual(['{ "call": "[PHONE_1]" }']);
    });

    it('scans arguments that are not JSON as plain text', () => {
      const r = scanTexts(policy, [{ json: '{"to": "a@x.com", cut' }]);
      expect(r.texts).toEqual(['{"to": "[EMAIL_1]", cut']);
    });

    it('names a blocking match in a string value', () => {
      expect(scanTexts(policy, ['fine', { json: '{"card": "4111 1111 1111 1111"}' }]).blockedBy).toBe('card');
    });
  });

  it('lets a card number be a card, not a phone number too', () => {
    const r = scanTexts(compilePolicy('all', everyDetector('redact')), ['4111 1111 1111 1111']);
    expect(r.texts).toEqual(['[CARD_1]']);
  });
});

describe('StreamPolicer', () => {
  const policy = compilePolicy('p', contentPolicySchema.parse({ detectors: { email: 'redact', card: 'block', secret: 'redact' }, apply_to: ['response'] }));
  /** Streams `text` in pieces of `size` characters; what the caller would have received. */
  function stream(text: string, size: number): { out: string[]; policer: StreamPolicer } {
    const policer = new StreamPolicer(policy);
    const out: string[] = [];
    for (let i = 0; i < text.length; i += size) {
      out.push(policer.push(text.slice(i, i + size)));
      if (policer.blockedBy) return { out, policer };
    }
    out.push(policer.end());
    return { out, policer };
  }

  it('sends the same text as a whole-answer scan, whatever the chunking, with a match split across chunks', () => {
    const text = `${'Some prose. '.repeat(40)}Write to jane.doe@example.com or to jane.doe@example.com again. ${'More prose. '.repeat(40)}`;
    const whole = scanTexts(policy, [text]).texts[0];
    for (const size of [1, 3, 7, 50, 1_000]) {
      const { out, policer } = stream(text, size);
      expect(out.join(''), `chunks of ${size}`).toBe(whole);
      expect(out.join('')).not.toContain('jane.doe');
      expect(policer.result().enforcements).toEqual([{ rule: 'email', action: 'redact', matches: 2 }]);
    }
  });

  it('holds back at most its window before the stream ends, and lets text through as it goes', () => {
    const policer = new StreamPolicer(policy);
    expect(policer.push('a'.repeat(STREAM_HOLD_CHARS))).toBe('');
    expect(policer.push('b'.repeat(10))).toBe('a'.repeat(10));
    expect(policer.end()).toBe('a'.repeat(STREAM_HOLD_CHARS - 10) + 'b'.repeat(10));
  });

  it('stops at a blocking match before any of it is sent', () => {
    const text = `${'Fine text. '.repeat(50)}Your card is 4111 1111 1111 1111, keep it safe. ${'x'.repeat(400)}`;
    const { out, policer } = stream(text, 5);
    expect(policer.blockedBy).toBe('card');
    expect(out.join('')).not.toMatch(/4111/);
  });

  it('holds tool calls\' pieces until the end: one delta each, arguments whole and policed with the text\'s placeholders', () => {
    const policer = new StreamPolicer(policy);
    expect(policer.push('mail a@x.com')).toBe('');
    policer.holdToolCalls([{ index: 1, id: 'c2', name: 'log', argumentsJsonDelta: '{"m":"b@' }]);
    policer.holdToolCalls([{ index: 0, id: 'c1', name: 'send', argumentsJsonDelta: '{"to":["a@x' }, { index: 1, id: '', name: '', argumentsJsonDelta: 'x.com"}' }]);
    policer.holdToolCalls([{ index: 0, id: '', name: '', argumentsJsonDelta: '.com"]}' }]);
    expect(policer.end()).toBe('mail [EMAIL_1]');
    expect(policer.endToolCalls()).toEqual([
      { index: 0, id: 'c1', name: 'send', argumentsJsonDelta: '{"to":["[EMAIL_1]"]}' },
      { index: 1, id: 'c2', name: 'log', argumentsJsonDelta: '{"m":"[EMAIL_2]"}' },
    ]);
    expect(policer.result().enforcements).toEqual([{ rule: 'email', action: 'redact', matches: 3 }]);
  });

  it('names a blocking match in a held tool call\'s arguments', () => {
    const policer = new StreamPolicer(policy);
    policer.holdToolCalls([{ index: 0, id: 'c1', name: 'pay', argumentsJsonDelta: '{"card":"4111 1111 1111 1111"}' }]);
    policer.end();
    policer.endToolCalls();
    expect(policer.blockedBy).toBe('card');
  });

  it('holds a PEM private key from its header until its END line, however long', () => {
    const body = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC'.repeat(40);
    const text = `Here: -----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY----- done. ${'y'.repeat(300)}`;
    const { out } = stream(text, 20);
    expect(out.join('')).not.toContain('MIIEvQ');
    expect(out.join('')).toContain('[SECRET_1] done.');
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
