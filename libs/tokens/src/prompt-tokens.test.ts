import { describe, expect, it } from 'vitest';
import { countChatTokens, countChatTokensUpperBound, countTokens, PromptTokens } from './index.js';

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
