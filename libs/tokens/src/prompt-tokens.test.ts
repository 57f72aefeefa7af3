import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { encode } from 'gpt-tokenizer';
import { countChatTokens, countChatTokensUpperBound, countTokens, countTokensUpperBound, PromptTokens, RecentCounts } from './index.js';

const MESSAGES = [{ content: 'You are terse.' }, { content: '7305 9921 4478 0062 — 東京 and ☕' }];

describe('PromptTokens', () => {
  it('gives the same counts as the functions it memoises', () => {
    const p = PromptTokens.chat(MESSAGES);
    expect(p.estimate('openai')).toBe(countChatTokens(MESSAGES, 'openai'));
    expect(p.estimate('approx')).toBe(countChatTokens(MESSAGES, 'approx'));
    expect(p.upperBound('approx')).toBe(countChatTokensUpperBound(MESSAGES, 'approx'));
    const texts = PromptTokens.texts(['first text', 'second']);
    expect(texts.estimate('openai')).toBe(countTokens('first text', 'openai') + countTokens('second', 'openai'));
  });

  it('bounds the approx estimate from above, and is exact for openai', () => {
    const p = PromptTokens.chat(MESSAGES);
    expect(p.upperBound('approx')).toBeGreaterThan(p.estimate('approx'));
    expect(p.upperBound('approx')).toBeGreaterThanOrEqual(p.estimate('openai'));
    expect(p.upperBound('openai')).toBe(p.estimate('openai'));
  });
});

describe('hostile prompts', () => {
  it('counts a 2 MiB run without whitespace (sliced, not one quadratic word), with a bound at or above the count', () => {
    const run = Array.from({ length: 2 * 1024 * 1024 }, (_, i) => String.fromCharCode(97 + ((i * 7919) % 26))).join('');
    // Unsliced, BPE over one 2 MiB word runs for many minutes: this test's timeout would end it.
    const tokens = countTokens(run, 'openai');
    const bound = countTokensUpperBound(run, 'openai');
    expect(tokens).toBeGreaterThan(run.length / 8);
    expect(bound).toBeGreaterThan(tokens);
    const p = PromptTokens.chat([{ content: run }]);
    expect(p.upperBound('openai') - p.estimate('openai')).toBe(bound - tokens);
  }, 60_000);

  it('keeps counts of ordinary text exact: nothing is cut below 1,024 characters without whitespace', () => {
    const word = 'x'.repeat(1023);
    expect(countTokens(`${word} and more`, 'openai')).toBe(encode(`${word} and more`).length);
    expect(countTokensUpperBound(`${word} and more`, 'openai')).toBe(encode(`${word} and more`).length);
    const long = `${'y'.repeat(1024)} tail`;
    expect(countTokensUpperBound(long, 'openai')).toBeGreaterThan(countTokens(long, 'openai'));
  });
});

describe('special tokens in a prompt', () => {
  it('are counted as the text they are, not refused', () => {
    expect(countTokens('say <|endoftext|> now', 'openai')).toBe(encode('say <|endoftext|> now', { disallowedSpecial: new Set() }).length);
    expect(PromptTokens.chat([{ content: '<|endoftext|>' }]).upperBound('openai')).toBeGreaterThan(3);
  });
});

describe('loading the tokenizer', () => {
  it('happens at the first openai count, not at import nor for approximate counts', () => {
    // A process of its own (this one has long loaded it); its tables take over 10 MB of heap,
    // so when it is loaded shows in the heap: after import and after an approximate count the
    // heap has not grown by them, after the first openai count it has.
    const script = `
      const heap = () => { globalThis.gc(); return process.memoryUsage().heapUsed / 1048576; };
      const start = heap();
      const t = await import('@llmgw/tokens');
      const atImport = heap() - start;
      t.countTokens('four characters a token', 'approx');
      const afterApprox = heap() - start;
      const n = t.countTokens('hello world', 'openai');
      console.log(JSON.stringify({ atImport, afterApprox, afterOpenai: heap() - start, n }));`;
    const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('.', import.meta.url)),
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    const r = JSON.parse(run.stdout) as { atImport: number; afterApprox: number; afterOpenai: number; n: number };
    expect(r.n).toBe(encode('hello world').length);
    expect(r.atImport).toBeLessThan(8);
    expect(r.afterApprox).toBeLessThan(8);
    expect(r.afterOpenai - r.afterApprox).toBeGreaterThan(10);
  });
});

describe('RecentCounts', () => {
  const c = (tokens: number) => ({ tokens, cuts: 0 });

  it('drops the least recently used texts once it holds more characters than its bound', () => {
    const recent = new RecentCounts(10, 100);
    recent.set('aaaaa', c(1));
    recent.set('bbbbb', c(2));
    expect(recent.get('aaaaa')).toEqual(c(1)); // now the most recent
    recent.set('ccccc', c(3));
    expect(recent.get('bbbbb')).toBeUndefined();
    expect(recent.get('aaaaa')).toEqual(c(1));
    expect(recent.get('ccccc')).toEqual(c(3));
  });

  it('never holds a text longer than its per-text bound', () => {
    const recent = new RecentCounts(1000, 8);
    recent.set('123456789', c(9));
    expect(recent.get('123456789')).toBeUndefined();
  });

  it('gives a repeated text the count the tokenizer gives it', () => {
    const text = 'A system prompt every request of a team repeats, word for word.';
    expect(countTokens(text, 'openai')).toBe(encode(text).length);
    expect(countTokens(text, 'openai')).toBe(encode(text).length);
  });
});
