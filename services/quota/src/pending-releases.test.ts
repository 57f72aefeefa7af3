import { describe, expect, it } from 'vitest';
import { silentLogger } from '@llmgw/logging';
import { PendingReleases } from './pending-releases.js';
import { StoreUnavailableError } from './redis-store.js';
import type { QuotaStore, ReleaseOutcome } from './store.js';

/** A store whose release fails while `down` is true, recording every attempt. */
class FlakyReleases implements Pick<QuotaStore, 'release'> {
  down = true;
  attempts: string[] = [];
  async release(tenantId: string, requestId: string): Promise<ReleaseOutcome> {
    this.attempts.push(`${tenantId}/${requestId}`);
    if (this.down) throw new StoreUnavailableError('paused');
    return 'released';
  }
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (cond: () => boolean, ms = 2_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await settle(5);
  }
};

describe('PendingReleases', () => {
  it('retries with backoff until the store answers, then forgets the release', async () => {
    const store = new FlakyReleases();
    const health: boolean[] = [];
    const p = new PendingReleases(store, { logger: silentLogger(), horizonMs: () => 60_000, firstRetryMs: 5, maxRetryMs: 20, onStoreHealth: (up) => health.push(up) });
    p.schedule('acme', 'r1');
    p.schedule('acme', 'r1'); // the same id twice is one release
    await until(() => store.attempts.length >= 4);
    expect(p.size).toBe(1);
    store.down = false;
    await until(() => p.size === 0);
    const n = store.attempts.length;
    await settle(50);
    expect(store.attempts.length).toBe(n); // no retry after success
    expect(new Set(store.attempts)).toEqual(new Set(['acme/r1']));
    expect(health.at(-1)).toBe(true);
    expect(health).toContain(false);
  });

  it('holds at most maxPending releases and drops those older than the horizon', async () => {
    const store = new FlakyReleases();
    let now = 1_000;
    const p = new PendingReleases(store, { logger: silentLogger(), horizonMs: () => 10_000, maxPending: 2, firstRetryMs: 5, maxRetryMs: 5, now: () => now });
    for (const id of ['a', 'b', 'c']) p.schedule('acme', id);
    expect(p.size).toBe(2);
    await settle(30);
    expect(store.attempts).not.toContain('acme/c');
    now += 10_000; // past the record horizon: the next failed attempt drops each release
    await until(() => p.size === 0);
    const n = store.attempts.length;
    store.down = false;
    await settle(30);
    expect(store.attempts.length).toBe(n);
  });

  it('stop cancels pending retries', async () => {
    const store = new FlakyReleases();
    const p = new PendingReleases(store, { logger: silentLogger(), horizonMs: () => 60_000, firstRetryMs: 5, maxRetryMs: 5 });
    p.schedule('acme', 'r1');
    await settle(20);
    p.stop();
    const n = store.attempts.length;
    await settle(30);
    expect(store.attempts.length).toBe(n);
    expect(p.size).toBe(0);
  });
});
