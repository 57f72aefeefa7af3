import type { SpentRequest } from '@llmgw/metrics';
import { AttemptOutcome, type UsageRecorded } from '@llmgw/proto/v1';

/**
 * What a usage event says a request spent, for the spend metrics: each provider call's tokens and
 * cost under its own model, the answering model, and why the request moved between models. A
 * retry or repair of the same model is not a move; a call that lost to a hedge is not one either
 * (the other call answered first, nothing failed).
 */
export function spentRequest(ev: UsageRecorded): SpentRequest {
  const fallbackReasons: string[] = [];
  ev.attempts.forEach((a, i) => {
    const next = ev.attempts[i + 1];
    if (next && a.outcome === AttemptOutcome.ATTEMPT_OUTCOME_FAILED && a.reason !== 'hedge_lost' && next.model !== a.model) fallbackReasons.push(a.reason);
  });
  return {
    tenant: ev.tenantId,
    route: ev.route,
    model: ev.success ? ev.model : '',
    operation: ev.operation === 'embed' ? 'embeddings' : ev.operation,
    fallbackUsed: ev.fallbackUsed,
    calls: ev.attempts,
    fallbackReasons,
  };
}
