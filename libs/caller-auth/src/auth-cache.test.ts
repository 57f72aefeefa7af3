import type { Principal } from '@llmgw/proto/auth';
import { describe, expect, it } from 'vitest';
import { AuthCache } from './auth-cache.js';

const principal = (keyId: string, tenantId = 'acme'): Principal => ({ tenantId, keyId, tier: 'startup', scopes: [], admin: false });

function clock(start = 1_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('AuthCache', () => {
  it('returns a principal until its TTL has passed, then forgets it', () => {
    const c = clock();
    const cache = new AuthCache({ now: c.now });
    const d = AuthCache.digest('sk-one');
    cache.set(d, principal('k1'), 5_000);
    expect(cache.get(d)).toEqual(principal('k1'));
    c.advance(4_999);
    expect(cache.get(d)?.keyId).toBe('k1');
    c.advance(1);
    expect(cache.get(d)).toBeUndefined();
    // Dropped, not merely hidden: turning the clock back does not bring it back.
    c.advance(-10);
    expect(cache.get(d)).toBeUndefined();
  });

  it('does not cache with a TTL of 0', () => {
    const cache = new AuthCache({ now: clock().now });
    const d = AuthCache.digest('sk-zero');
    cache.set(d, principal('k1'), 0);
    expect(cache.get(d)).toBeUndefined();
  });

  it('misses on an unknown digest', () => {
    const cache = new AuthCache({ now: clock().now });
    cache.set(AuthCache.digest('sk-a'), principal('ka'), 1_000);
    expect(cache.get(AuthCache.digest('sk-b'))).toBeUndefined();
  });

  it('revokeKey drops every entry of that key id and nothing else', () => {
    const cache = new AuthCache({ now: clock().now });
    const a1 = AuthCache.digest('sk-a-1');
    const a2 = AuthCache.digest('sk-a-2');
    const b = AuthCache.digest('sk-b');
    cache.set(a1, principal('ka'), 10_000);
    cache.set(a2, principal('ka'), 10_000);
    cache.set(b, principal('kb'), 10_000);
    cache.revokeKey('ka');
    expect(cache.get(a1)).toBeUndefined();
    expect(cache.get(a2)).toBeUndefined();
    expect(cache.get(b)?.keyId).toBe('kb');
    cache.revokeKey('unknown');
    expect(cache.get(b)?.keyId).toBe('kb');
  });

  it('never keeps an entry past the expiry auth gave, whatever the TTL', () => {
    const c = clock();
    const cache = new AuthCache({ now: c.now });
    const d = AuthCache.digest('sk-expiring');
    cache.set(d, principal('k1'), 5_000, { expiresAtMs: 1_000 + 1_200 });
    c.advance(1_199);
    expect(cache.get(d)?.keyId).toBe('k1');
    c.advance(1);
    expect(cache.get(d)).toBeUndefined();
    // An answer for a secret already past its expiry is not cached at all.
    cache.set(d, principal('k1'), 5_000, { expiresAtMs: c.now() });
    expect(cache.get(d)).toBeUndefined();
  });

  it('does not cache an answer from a lookup that began before the key was revoked', () => {
    const c = clock();
    const cache = new AuthCache({ now: c.now });
    const d = AuthCache.digest('sk-racing');
    const started = c.now();
    c.advance(20);
    cache.revokeKey('k1'); // the broadcast arrives while Authenticate is in flight
    c.advance(20);
    cache.set(d, principal('k1'), 5_000, { lookupStartedAt: started });
    expect(cache.get(d)).toBeUndefined();
    // A lookup begun after the revocation is auth's fresh word (e.g. a rotated secret): cached.
    c.advance(1);
    cache.set(d, principal('k1'), 5_000, { lookupStartedAt: c.now() });
    expect(cache.get(d)?.keyId).toBe('k1');
    // Other key ids are not affected.
    cache.set(AuthCache.digest('sk-other'), principal('k2'), 5_000, { lookupStartedAt: started });
    expect(cache.get(AuthCache.digest('sk-other'))?.keyId).toBe('k2');
  });

  it('evicts the oldest entry when maxEntries is reached', () => {
    const cache = new AuthCache({ now: clock().now, maxEntries: 2 });
    const [d1, d2, d3] = ['sk-1', 'sk-2', 'sk-3'].map((k) => AuthCache.digest(k)) as [string, string, string];
    cache.set(d1, principal('k1'), 10_000);
    cache.set(d2, principal('k2'), 10_000);
    cache.set(d3, principal('k3'), 10_000);
    expect(cache.get(d1)).toBeUndefined();
    expect(cache.get(d2)?.keyId).toBe('k2');
    expect(cache.get(d3)?.keyId).toBe('k3');
  });

  it('digest is a stable hex SHA-256 that never equals or contains the key', () => {
    const key = 'sk-test-startup-000000000000';
    const d = AuthCache.digest(key);
    expect(d).toMatch(/^[0-9a-f]{64}$/);
    expect(d).not.toBe(key);
    expect(d).not.toContain(key);
    expect(AuthCache.digest(key)).toBe(d);
    expect(AuthCache.digest(`${key}x`)).not.toBe(d);
    // Known SHA-256 of "abc".
    expect(AuthCache.digest('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
