import { describe, expect, it } from 'vitest';
import { MemoryEventBus } from '@llmgw/events';
import { silentLogger } from '@llmgw/logging';
import { AlertPublisher } from './alerts.js';
import { MemoryQuotaStore } from './memory-store.js';
import { QuotaManager, STORE_UNAVAILABLE_LIMIT } from './quota-manager.js';
import { FakeClock, limit, testConfig } from './test-support.js';

/*
 * A concurrency lease ends when its request's usage event is reconciled. While no event can
 * arrive (the reconciler cannot consume: NATS down), leases would pile up until their TTL and
 * refuse every request: concurrency follows quota.on_store_down.concurrency instead.
 */

// cc: 2 concurrent requests and nothing else.
const extra = (policy: string) => `  cc: { tier: free, limits: { concurrent_requests: 2 } }\nquota: { on_store_down: { concurrency: ${policy} } }`;

function setup(policy: 'fail_open' | 'fail_closed') {
  const clock = new FakeClock();
  const logger = silentLogger();
  const state = { arriving: true };
  const store = new MemoryQuotaStore({ leaseTtlMs: 60_000, reservationTtlMs: 600_000, now: clock.now });
  const manager = new QuotaManager({
    policy: { current: testConfig(extra(policy)) },
    store,
    alerts: new AlertPublisher(new MemoryEventBus(), logger, clock.now),
    logger,
    usageArriving: () => state.arriving,
  });
  let seq = 0;
  const reserve = () => manager.reserve({ requestId: `r${++seq}`, tenantId: 'cc', route: 'chat', model: 'm', estimatedTokens: 1, estimatedCostMicros: 1 });
  return { state, reserve, store };
}

describe('concurrency while usage events cannot arrive', () => {
  it('counts leases while events arrive', async () => {
    const { reserve } = setup('fail_open');
    const d = [await reserve(), await reserve(), await reserve()];
    expect(d.map((x) => x.allowed)).toEqual([true, true, false]);
    expect(d[2]!.limit).toBe('tenant:concurrent_requests');
  });

  it('fail_open: admits without a lease, marked degraded, and counts again once they arrive', async () => {
    const { state, reserve, store } = setup('fail_open');
    state.arriving = false;
    const during = await Promise.all(Array.from({ length: 5 }, reserve));
    expect(during.every((d) => d.allowed && d.degraded)).toBe(true);
    expect((await store.status('cc', [limit('concurrent_requests', 2)]))[0]!.used).toBe(0);
    state.arriving = true;
    const after = [await reserve(), await reserve(), await reserve()];
    expect(after.map((x) => x.allowed)).toEqual([true, true, false]);
  });

  it('fail_closed: refuses with store_unavailable while they cannot arrive', async () => {
    const { state, reserve } = setup('fail_closed');
    state.arriving = false;
    expect(await reserve()).toMatchObject({ allowed: false, limit: STORE_UNAVAILABLE_LIMIT, degraded: true });
  });
});
