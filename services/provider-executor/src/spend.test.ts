import { AttemptOutcome, AttemptUsage, TokenSource, UsageRecorded } from '@llmgw/proto/v1';
import { describe, expect, it } from 'vitest';
import { spentRequest } from './spend.js';

const call = (model: string, outcome: AttemptOutcome, reason = '', costMicros = 0): AttemptUsage =>
  AttemptUsage.fromPartial({
  model,
  provider: 'p',
  inputTokens: 10,
  outputTokens: outcome === AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS ? 5 : 0,
  costMicros,
  tokenSource: TokenSource.TOKEN_SOURCE_PROVIDER,
  outcome,
  reason,
  });
const FAILED = AttemptOutcome.ATTEMPT_OUTCOME_FAILED;
const OK = AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS;
const event = (attempts: AttemptUsage[], extra: Partial<UsageRecorded> = {}) =>
  UsageRecorded.fromPartial({ tenantId: 'acme', route: 'chat', model: attempts.at(-1)?.model ?? '', operation: 'chat', success: true, attempts, ...extra });

describe('spentRequest', () => {
  it('counts a move to another model by the reason the earlier one failed', () => {
    const r = spentRequest(event([call('a', FAILED, 'http_5xx'), call('b', FAILED, 'timeout', 3), call('c', OK, '', 7)], { fallbackUsed: true }));
    expect(r).toMatchObject({ tenant: 'acme', route: 'chat', model: 'c', operation: 'chat', fallbackUsed: true, fallbackReasons: ['http_5xx', 'timeout'] });
    expect(r.calls.map((c) => [c.model, c.costMicros])).toEqual([['a', 0], ['b', 3], ['c', 7]]);
  });

  it('does not count a retry or repair of the same model, a hedge that lost, or the failure that ended the request', () => {
    expect(spentRequest(event([call('a', FAILED, 'schema_failure'), call('a', OK)])).fallbackReasons).toEqual([]);
    expect(spentRequest(event([call('a', FAILED, 'hedge_lost'), call('b', OK)])).fallbackReasons).toEqual([]);
    const failed = spentRequest(event([call('a', FAILED, 'http_5xx'), call('a', FAILED, 'http_5xx'), call('b', FAILED, 'http_5xx')], { success: false, model: 'b' }));
    expect(failed.fallbackReasons).toEqual(['http_5xx']);
    expect(failed.model).toBe(''); // nothing answered
  });

  it('names an embedding request by the GenAI operation name', () => {
    expect(spentRequest(event([call('e', OK)], { operation: 'embed' })).operation).toBe('embeddings');
  });
});
