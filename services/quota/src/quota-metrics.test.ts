import { describe, expect, it } from 'vitest';
import { MemoryEventBus } from '@llmgw/events';
import { silentLogger } from '@llmgw/logging';
import { createMetrics, quotaMetrics, type Metrics } from '@llmgw/metrics';
import { AlertPublisher } from './alerts.js';
import { MemoryQuotaStore } from './memory-store.js';
import { QuotaManager, STORE_UNAVAILABLE_LIMIT } from './quota-manager.js';
import { StoreUnavailableError } from './redis-store.js';
import type { QuotaStore } from './store.js';
import { FakeClock, testConfig } from './test-support.js';

const CONFIG = testConfig();

function managerWith(store: QuotaStore, metrics: Metrics): QuotaManager {
  const logger = silentLogger();
  const clock = new FakeClock();
  return new QuotaManager({ policy: { current: CONFIG }, store, alerts: new AlertPublisher(new MemoryEventBus(), logger, clock.now), logger, metrics: quotaMetrics(metrics) });
}

async function count(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const family = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return family?.values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value ?? 0;
}

let seq = 0;
const req = (tenantId: string) => ({ requestId: `r${++seq}`, tenantId, route: 'support-chat', model: 'small-fast', estimatedTokens: 10, estimatedCostMicros: 1 });

describe('quota metrics', () => {
  it('counts allowed and denied decisions, denials under the limit that stopped them', async () => {
    const metrics = createMetrics('quota', { defaultMetrics: false });
    const clock = new FakeClock();
    const manager = managerWith(new MemoryQuotaStore({ leaseTtlMs: 60_000, reservationTtlMs: 600_000, now: clock.now }), metrics);
    // ratesonly: requests_per_minute 2.
    const decisions = [];
    for (let i = 0; i < 3; i++) decisions.push(await manager.reserve(req('ratesonly')));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, false]);

    expect(await count(metrics, 'llmgw_quota_decisions_total', { decision: 'allowed', limit: '' })).toBe(2);
    expect(await count(metrics, 'llmgw_quota_decisions_total', { decision: 'denied', limit: 'tenant:requests_per_minute' })).toBe(1);
    expect(await count(metrics, 'llmgw_quota_store_degraded_total')).toBe(0);
    // No tenant id in any label.
    expect(await metrics.registry.metrics()).not.toContain('ratesonly');
  });

  it('counts decisions taken without the store as degraded, fail-closed denials under store_unavailable', async () => {
    const metrics = createMetrics('quota', { defaultMetrics: false });
    const down: QuotaStore = {
      reserve: () => Promise.reject(new StoreUnavailableError('redis down')),
      release: () => Promise.reject(new StoreUnavailableError('redis down')),
      reconcile: () => Promise.reject(new StoreUnavailableError('redis down')),
      status: () => Promise.reject(new StoreUnavailableError('redis down')),
      reset: () => Promise.reject(new StoreUnavailableError('redis down')),
    };
    const manager = managerWith(down, metrics);
    // acme has a dollar budget (budgets fail closed by default); ratesonly only rates (fail open).
    expect((await manager.reserve(req('acme'))).allowed).toBe(false);
    expect((await manager.reserve(req('ratesonly'))).allowed).toBe(true);

    expect(await count(metrics, 'llmgw_quota_store_degraded_total')).toBe(2);
    expect(await count(metrics, 'llmgw_quota_decisions_total', { decision: 'denied', limit: STORE_UNAVAILABLE_LIMIT })).toBe(1);
    expect(await count(metrics, 'llmgw_quota_decisions_total', { decision: 'allowed', limit: '' })).toBe(1);
  });

  it('records nothing for a request rejected as invalid', async () => {
    const metrics = createMetrics('quota', { defaultMetrics: false });
    const clock = new FakeClock();
    const manager = managerWith(new MemoryQuotaStore({ leaseTtlMs: 60_000, reservationTtlMs: 600_000, now: clock.now }), metrics);
    await expect(manager.reserve({ ...req('acme'), requestId: '' })).rejects.toThrow('request_id is required');
    expect(await count(metrics, 'llmgw_quota_decisions_total', { decision: 'allowed' })).toBe(0);
  });
});
