import { Tokenizer, type Plan, type PlannedAttempt } from '@llmgw/proto/router';
import { PromptTokens } from '@llmgw/tokens';
import { describe, expect, it } from 'vitest';
import { planEstimate } from './estimate.js';

const attempt = (model: string, inputPerMillionUsd: number): PlannedAttempt => ({
  model,
  provider: 'p',
  upstreamModel: model,
  timeoutMs: 0,
  maxRetries: 0,
  pricing: { inputPerMillionUsd, outputPerMillionUsd: inputPerMillionUsd, cachedInputPerMillionUsd: inputPerMillionUsd, cacheWriteInputPerMillionUsd: inputPerMillionUsd },
  tokenizer: Tokenizer.TOKENIZER_APPROX,
  contextTokens: 100_000,
  maxOutputTokens: 1_000,
  demoted: '',
});

const plan = (extra: Partial<Plan>): Plan => ({
  route: 'r',
  rule: 'x',
  attempts: [attempt('cheap', 1), attempt('dear', 10)],
  fallbackTriggers: [],
  maxTokensCap: 1_000,
  defaultMaxTokens: 100,
  timeoutMs: 1_000,
  skipped: [],
  retryBackoffMs: 0,
  guardrails: undefined,
  promptTokensMin: 0,
  promptTokensMax: 1_000_000,
  schemaFailurePolicy: 0,
  hedge: undefined,
  split: '',
  intent: '',
  stickyBucketMin: 0,
  stickyBucketMax: 9_999,
  ...extra,
});

describe('planEstimate', () => {
  const prompt = PromptTokens.texts(['how much will this cost me']);

  it('reserves the dearest attempt of a plain plan', () => {
    const plain = planEstimate(plan({}), prompt, 100);
    const dearOnly = planEstimate(plan({ attempts: [attempt('dear', 10)] }), prompt, 100);
    expect(plain).toEqual(dearOnly);
  });

  it('reserves two calls of the dearest attempt for a hedged plan: both may be billed', () => {
    const plain = planEstimate(plan({}), prompt, 100);
    const hedged = planEstimate(plan({ hedge: { delayMs: 100, delayP95: false, delayMsMin: 0, delayMsMax: 0, sameModel: false } }), prompt, 100);
    expect(hedged).toEqual({ tokens: 2 * plain.tokens, costMicros: 2 * plain.costMicros });
    expect(plain.costMicros).toBeGreaterThan(0);
  });
});
