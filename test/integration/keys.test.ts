import { credentials, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callUnary } from '@llmgw/grpc';
import { AuthServiceClient, KeySource, type KeyInfo } from '@llmgw/proto/auth';
import { GatewayServiceClient } from '@llmgw/proto/v1';
import type { ServiceReplica } from '@llmgw/local-infra';
import { chat, KEYS, startTestMesh, userChat, type TestMesh } from '../src/harness.js';

/*
 * API keys through the real mesh (processes, Redis, NATS): a revocation reaches every edge
 * within 1 s of RevokeKey's answer although both had the key cached; an expiring key stops at its
 * expiry on the edge although cached; ListKeys on auth's port.
 */

let mesh: TestMesh;
let auth: AuthServiceClient;
let edge2: ServiceReplica;
let gateway2: GatewayServiceClient;
const admin = { authorization: `Bearer ${KEYS.admin}` };

beforeAll(async () => {
  mesh = await startTestMesh();
  // Auth's key methods are for operators: the operator's mesh certificate, and an admin API key.
  auth = mesh.dial(AuthServiceClient, 'auth');
  edge2 = await mesh.services.addReplica('edge');
  gateway2 = new GatewayServiceClient(edge2.addr, credentials.createInsecure());
}, 90_000);
afterAll(async () => {
  gateway2?.close();
  auth?.close();
  await mesh?.stop();
});

const createKey = (req: { tenantId: string; scopes: string[]; expiresAt?: Date }) => callUnary(auth.createKey.bind(auth), req, { timeoutMs: 5_000, metadata: admin });

/** Calls Chat every 20 ms until it is refused; the time from `t0` to the first refusal, and the refusal. */
async function untilRefused(client: GatewayServiceClient, key: string, t0: number, limitMs: number): Promise<{ ms: number; code?: number; details?: string }> {
  while (Date.now() - t0 < limitMs) {
    const r = await chat(client, key, userChat('still there?'), 5_000);
    if (!r.ok) return { ms: Date.now() - t0, code: r.error.code, details: r.error.details };
    await new Promise((res) => setTimeout(res, 20));
  }
  return { ms: Infinity };
}

describe('revocation through the mesh', () => {
  it('reaches both edges within 1 s of the RevokeKey answer, though both cached the key', async () => {
    const results: number[] = [];
    for (let round = 0; round < 3; round++) {
      const key = await createKey({ tenantId: 'loadtest', scopes: ['chat'] });
      // Both edges authenticate the key and cache it (auth.cache_ttl_ms is 5 s in the fixture).
      for (const client of [mesh.gateway, gateway2]) {
        const r = await chat(client, key.apiKey, userChat('hi'));
        expect(r.ok ? 'ok' : r.error.details).toBe('ok');
      }
      await callUnary(auth.revokeKey.bind(auth), { keyId: key.keyId }, { timeoutMs: 5_000, metadata: admin });
      const t0 = Date.now();
      const [a, b] = await Promise.all([untilRefused(mesh.gateway, key.apiKey, t0, 3_000), untilRefused(gateway2, key.apiKey, t0, 3_000)]);
      for (const r of [a, b]) {
        expect(r.code).toBe(status.UNAUTHENTICATED);
        expect(r.details).toBe('invalid API key');
        expect(r.ms).toBeLessThan(1_000);
        results.push(r.ms);
      }
      // And it stays refused (no cache brings it back).
      for (const client of [mesh.gateway, gateway2]) {
        const again = await chat(client, key.apiKey, userChat('hi'));
        expect(again.ok ? 'ok' : again.error.code).toBe(status.UNAUTHENTICATED);
      }
    }
    console.log(`revocation reached the edges after ${results.join(', ')} ms (first refused call after RevokeKey answered)`);
  }, 60_000);
});

describe('expiry through the mesh', () => {
  it('a key cached by both edges stops at its expiry, UNAUTHENTICATED "API key expired"', async () => {
    const expiresAt = new Date(Date.now() + 1_500);
    const key = await createKey({ tenantId: 'loadtest', scopes: ['chat'], expiresAt });
    expect(key.expiresAt).toEqual(expiresAt);
    for (const client of [mesh.gateway, gateway2]) expect((await chat(client, key.apiKey, userChat('hi'))).ok).toBe(true);
    const [a, b] = await Promise.all([untilRefused(mesh.gateway, key.apiKey, Date.now(), 4_000), untilRefused(gateway2, key.apiKey, Date.now(), 4_000)]);
    for (const r of [a, b]) {
      expect(r.code).toBe(status.UNAUTHENTICATED);
      expect(r.details).toBe('API key expired');
      expect(r.details).not.toContain(key.apiKey);
    }
    // Not before the expiry, and not long after it (the edge cache is capped by it, not by its 5 s TTL).
    const late = Date.now() - expiresAt.getTime();
    expect(late).toBeGreaterThanOrEqual(0);
    expect(late).toBeLessThan(1_000);
  }, 30_000);

  it('CreateKey refuses an expiry in the past or too far ahead, naming expires_at', async () => {
    await expect(createKey({ tenantId: 'loadtest', scopes: ['chat'], expiresAt: new Date(Date.now() - 60_000) })).rejects.toMatchObject({
      kind: 'invalid_argument',
      message: 'expires_at: must be in the future',
    });
    await expect(createKey({ tenantId: 'loadtest', scopes: ['chat'], expiresAt: new Date(Date.now() + 10 * 365 * 86_400_000) })).rejects.toMatchObject({
      kind: 'invalid_argument',
      message: 'expires_at: must be at most 366 days from now',
    });
  });
});

describe('ListKeys through the mesh', () => {
  it('an admin lists config and created keys page by page; a tenant key may not', async () => {
    const made = await createKey({ tenantId: 'other', scopes: ['chat'] });
    const listKeys = (key: string, pageToken: string) =>
      callUnary(auth.listKeys.bind(auth), { tenantId: 'other', pageSize: 1, pageToken }, { timeoutMs: 5_000, metadata: { authorization: `Bearer ${key}` } });
    await expect(listKeys(KEYS.other, '')).rejects.toMatchObject({ kind: 'permission_denied' });
    const all: KeyInfo[] = [];
    let token = '';
    do {
      const page = await listKeys(KEYS.admin, token);
      expect(page.keys.length).toBeLessThanOrEqual(1);
      all.push(...page.keys);
      token = page.nextPageToken;
    } while (token && all.length < 100);
    expect(all.map((k) => k.keyId).sort()).toEqual(['k-other', made.keyId].sort());
    expect(all.find((k) => k.keyId === 'k-other')?.source).toBe(KeySource.KEY_SOURCE_CONFIG);
    expect(all.find((k) => k.keyId === made.keyId)).toMatchObject({ source: KeySource.KEY_SOURCE_CREATED, visiblePrefix: made.apiKey.slice(0, 10), revoked: false });
    expect(JSON.stringify(all)).not.toContain(made.apiKey);
  });
});
