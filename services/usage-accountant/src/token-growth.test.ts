import { silentLogger } from '@llmgw/logging';
import type { TokenGrowthAlertRaised } from '@llmgw/proto/v1';
import { describe, expect, it } from 'vitest';
import { MemoryAlertMarks } from './alerts.js';
import { hourStartMs } from './buckets.js';
import { TokenGrowthWatch } from './token-growth.js';
import { MemoryUsageStore } from './usage-store.js';
import { usageFact } from './test-facts.js';

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 11, 2, 21, 30);
const CURRENT = hourStartMs(NOW);

/** A store with `tokens` (input) per hour offset from the current hour, for tenant acme. */
async function storeWith(route: string, byHour: Record<number, number>, store = new MemoryUsageStore({ dedupeTtlMs: HOUR })): Promise<MemoryUsageStore> {
  for (const [offset, tokens] of Object.entries(byHour)) {
    await store.record(usageFact({ eventId: `${route}-${offset}`, route, model: 'm', occurredAtMs: CURRENT + Number(offset) * HOUR + 60_000, inputTokens: tokens }));
  }
  return store;
}

/** 24 quiet hours of `perHour` tokens before the current hour. */
const history = (perHour: number) => Object.fromEntries(Array.from({ length: 24 }, (_, i) => [-(i + 1), perHour]));

function watch(store: MemoryUsageStore, published: { alert: TokenGrowthAlertRaised; id: string }[], opts: { failPublish?: boolean; marks?: MemoryAlertMarks } = {}) {
  const marks = opts.marks ?? new MemoryAlertMarks(() => NOW);
  return new TokenGrowthWatch({
    store,
    config: () => ({ factor: 3, min_tokens: 1_000 }),
    tenants: () => ['acme'],
    claim: (k, ttl) => marks.claim(k, ttl),
    release: (k) => marks.release(k),
    publish: async (alert, id) => {
      if (opts.failPublish) throw new Error('bus down');
      published.push({ alert, id });
    },
    logger: silentLogger(),
    now: () => NOW,
  });
}

describe('TokenGrowthWatch', () => {
  it('raises one alert when the current hour passes factor × the mean of the 24 hours before, and not again', async () => {
    const store = await storeWith('chat', { ...history(500), 0: 1_600 });
    const published: { alert: TokenGrowthAlertRaised; id: string }[] = [];
    const w = watch(store, published);
    expect(await w.check()).toHaveLength(1);
    expect(published[0]).toMatchObject({ id: 'token_growth:acme:chat:2026-12-02T21:00:00Z', alert: { tenantId: 'acme', route: 'chat', tokens: 1_600, baselineTokensPerHour: 500, factor: 3 } });
    expect(await w.check()).toHaveLength(0);
    expect(published).toHaveLength(1);
  });

  it('judges the last complete hour too, against the 24 hours before it', async () => {
    const published: { alert: TokenGrowthAlertRaised; id: string }[] = [];
    const store = await storeWith('chat', { ...Object.fromEntries(Array.from({ length: 24 }, (_, i) => [-(i + 2), 400])), [-1]: 1_300, 0: 10 });
    await watch(store, published).check();
    expect(published.map((p) => p.alert.hour)).toEqual(['2026-12-02T20:00:00Z']);
  });

  it('stays quiet at factor × baseline or below, under min_tokens, and for a route with no history', async () => {
    const published: { alert: TokenGrowthAlertRaised; id: string }[] = [];
    const store = await storeWith('steady', { ...history(500), 0: 1_500 });
    await storeWith('tiny', { ...history(100), 0: 900 }, store);
    await storeWith('new', { 0: 50_000 }, store);
    expect(await watch(store, published).check()).toEqual([]);
  });

  it('raises the alert again at the next check when it could not be stored', async () => {
    const store = await storeWith('chat', { ...history(500), 0: 1_600 });
    const marks = new MemoryAlertMarks(() => NOW);
    const published: { alert: TokenGrowthAlertRaised; id: string }[] = [];
    expect(await watch(store, published, { failPublish: true, marks }).check()).toEqual([]);
    expect(await watch(store, published, { marks }).check()).toHaveLength(1);
  });
});
