import { costMicros } from '@llmgw/pricing';
import { Tokenizer } from '@llmgw/proto/router';
import { AttemptOutcome, TokenSource } from '@llmgw/proto/v1';
import { describe, expect, it } from 'vitest';
import { attempt } from './test-helpers.js';
import { UsageLedger } from './usage-ledger.js';
import { UsageLabels } from '@llmgw/proto/executor';
import { priced } from './usage.js';

const request = {
  requestId: 'r1',
  tenantId: 'acme',
  keyId: 'k1',
  route: 'r',
  split: '',
  intent: '',
  operation: 'chat' as const,
  streamed: false,
  labels: UsageLabels.fromPartial({ user: 'u-42', promptVersion: 'v7', feature: 'search' }),
};
const NO_PARTS = { cachedInputTokens: 0, cacheWriteInputTokens: 0, reasoningTokens: 0 };
/** 10 prompt tokens in the openai family, 12 in approx: the family of each attempt decides. */
const prompt = (family: 'openai' | 'approx') => (family === 'openai' ? 10 : 12);

describe('UsageLedger', () => {
  it('lists every attempt and totals them; the event names the model that answered', () => {
    const cheap = attempt('oa-gpt-4o-mini');
    const dear = attempt('an-claude-haiku-4-5');
    const ledger = new UsageLedger(request, prompt, 1_000);
    ledger.failed(cheap, 'oa', 'http_5xx');
    ledger.answered(dear, 'an', priced(dear, { inputTokens: 100, outputTokens: 50 }, false));
    const total = ledger.total();
    expect(total).toEqual({ inputTokens: 100, outputTokens: 50, ...NO_PARTS, costMicros: costMicros(dear.pricing!, { inputTokens: 100, outputTokens: 50 }), costUsd: costMicros(dear.pricing!, { inputTokens: 100, outputTokens: 50 }) / 1e6, tokensEstimated: false });
    const ev = ledger.event(undefined, true, 2, 1_250);
    expect(ev).toMatchObject({
      eventId: 'r1',
      requestId: 'r1',
      tenantId: 'acme',
      keyId: 'k1',
      route: 'r',
      model: 'an-claude-haiku-4-5',
      provider: 'an',
      inputTokens: 100,
      outputTokens: 50,
      costMicros: total.costMicros,
      tokenSource: TokenSource.TOKEN_SOURCE_PROVIDER,
      success: true,
      errorCode: '',
      fallbackUsed: true,
      attemptCount: 2,
      latencyMs: 250,
      streamed: false,
      operation: 'chat',
      user: 'u-42',
      promptVersion: 'v7',
      feature: 'search',
    });
    expect(ev.occurredAt).toEqual(new Date(1_250));
    expect(ev.attempts.map((a) => [a.model, a.outcome, a.reason, a.costMicros])).toEqual([
      ['oa-gpt-4o-mini', AttemptOutcome.ATTEMPT_OUTCOME_FAILED, 'http_5xx', 0],
      ['an-claude-haiku-4-5', AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, '', total.costMicros],
    ]);
    expect(ledger.attemptCount()).toBe(2);
  });

  it.each(['timeout', 'deadline_exceeded', 'cancelled'] as const)('charges an attempt that failed with %s its prompt, estimated in its own tokenizer', (reason) => {
    const a = attempt('an-claude-haiku-4-5', undefined, { tokenizer: Tokenizer.TOKENIZER_APPROX });
    const ledger = new UsageLedger(request, prompt, 0);
    ledger.failed(a, 'an', reason);
    expect(ledger.total()).toMatchObject({ inputTokens: 12, outputTokens: 0, costMicros: costMicros(a.pricing!, { inputTokens: 12, outputTokens: 0 }), tokensEstimated: true });
    const ev = ledger.event('deadline_exceeded', false, 1, 0);
    expect(ev).toMatchObject({ success: false, errorCode: 'DEADLINE_EXCEEDED', model: 'an-claude-haiku-4-5', provider: 'an', tokenSource: TokenSource.TOKEN_SOURCE_ESTIMATED });
    expect(ev.attempts[0]).toMatchObject({ reason, tokenSource: TokenSource.TOKEN_SOURCE_ESTIMATED, inputTokens: 12 });
  });

  it.each(['http_5xx', 'http_429', 'connection_error', 'invalid_request', 'auth_config', 'bad_response'] as const)(
    'lists an attempt that failed with %s at no cost',
    (reason) => {
      const ledger = new UsageLedger(request, prompt, 0);
      ledger.failed(attempt('oa-gpt-4o-mini'), 'oa', reason);
      expect(ledger.total()).toEqual({ inputTokens: 0, outputTokens: 0, ...NO_PARTS, costMicros: 0, costUsd: 0, tokensEstimated: false });
      expect(ledger.event('unavailable', false, 1, 0)).toMatchObject({ model: 'oa-gpt-4o-mini', provider: 'oa', errorCode: 'UNAVAILABLE', success: false });
    },
  );

  it('names the partly answered model for a stream cut short, and nothing for a request that reached no provider', () => {
    const ledger = new UsageLedger({ ...request, streamed: true }, prompt, 0);
    ledger.failed(attempt('oa-gpt-4o-mini'), 'oa', 'http_5xx');
    ledger.partial(attempt('ge-gemini-2.5-flash'), 'ge', priced(attempt('ge-gemini-2.5-flash'), { inputTokens: 8, outputTokens: 3 }, true), 'cancelled');
    expect(ledger.event('cancelled', true, 2, 0).attempts[1]).toMatchObject({ outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED, reason: 'cancelled', inputTokens: 8, outputTokens: 3 });
    expect(ledger.event('cancelled', true, 2, 0)).toMatchObject({ model: 'ge-gemini-2.5-flash', provider: 'ge', errorCode: 'CANCELLED', streamed: true, tokenSource: TokenSource.TOKEN_SOURCE_ESTIMATED });
    const empty = new UsageLedger(request, prompt, 0).event('invalid_argument', false, 0, 0);
    expect(empty).toMatchObject({ model: '', provider: '', attempts: [], inputTokens: 0, costMicros: 0, errorCode: 'INVALID_ARGUMENT' });
  });

  it('sums cache and reasoning parts over attempts into the event, each attempt priced at its own cache rates', () => {
    const a = attempt('oa-gpt-4o-mini', undefined, { pricing: { inputPerMillionUsd: 2, outputPerMillionUsd: 8, cachedInputPerMillionUsd: 0.5, cacheWriteInputPerMillionUsd: 2 } });
    const b = attempt('an-claude-haiku-4-5', undefined, { pricing: { inputPerMillionUsd: 1, outputPerMillionUsd: 5, cachedInputPerMillionUsd: 0.1, cacheWriteInputPerMillionUsd: 1.25 } });
    const ledger = new UsageLedger(request, prompt, 0);
    ledger.partial(a, 'oa', priced(a, { inputTokens: 1000, cachedInputTokens: 800, outputTokens: 100, reasoningTokens: 60 }, false), 'schema_mismatch');
    ledger.answered(b, 'an', priced(b, { inputTokens: 2000, cachedInputTokens: 500, cacheWriteInputTokens: 1000, outputTokens: 40 }, false));
    const ev = ledger.event(undefined, true, 2, 0);
    // a: 200 × 2 + 800 × 0.5 + 100 × 8 = 1600; b: 500 × 1 + 500 × 0.1 + 1000 × 1.25 + 40 × 5 = 2000
    expect(ev.attempts.map((x) => [x.cachedInputTokens, x.cacheWriteInputTokens, x.reasoningTokens, x.costMicros])).toEqual([
      [800, 0, 60, 1600],
      [500, 1000, 0, 2000],
    ]);
    expect(ev).toMatchObject({ inputTokens: 3000, outputTokens: 140, cachedInputTokens: 1300, cacheWriteInputTokens: 1000, reasoningTokens: 60, costMicros: 3600 });
  });
});
