import { describe, expect, it } from 'vitest';
import { allTenantLimits, resolveLimits } from './limits.js';
import { testConfig } from './test-support.js';

describe('resolveLimits', () => {
  const cfg = testConfig();

  it('combines tier defaults, tenant overrides, the route and the model limits; dollars in micros', () => {
    const limits = resolveLimits(cfg, 'acme', 'support-chat', 'large-reasoning');
    expect(limits?.map((l) => [l.name, l.value])).toEqual([
      ['tenant:requests_per_minute', 100],
      ['tenant:tokens_per_day', 100_000],
      ['tenant:usd_per_day', 10_000_000],
      ['tenant:concurrent_requests', 50],
      ['route:support-chat:tokens_per_day', 5_000],
      ['model:large-reasoning:usd_per_day', 1_000_000],
    ]);
  });

  it('an empty route has no route limits; limits of other routes and models are skipped', () => {
    expect(resolveLimits(cfg, 'acme', '', 'small-fast')?.map((l) => l.scope)).toEqual(['tenant', 'tenant', 'tenant', 'tenant']);
    expect(resolveLimits(cfg, 'acme', 'batch', 'small-fast')?.map((l) => l.scope)).toEqual(['tenant', 'tenant', 'tenant', 'tenant']);
  });

  it('is undefined for unknown tenants; status lists every limit of the tenant', () => {
    expect(resolveLimits(cfg, 'nobody', '', '')).toBeUndefined();
    expect(resolveLimits(cfg, 'constructor', '', '')).toBeUndefined();
    expect(allTenantLimits(cfg, 'acme')).toHaveLength(6);
  });
});
