import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNatsBus, Subjects } from '@llmgw/events';
import { callUnary } from '@llmgw/grpc';
import { silentLogger } from '@llmgw/logging';
import { AuthServiceClient } from '@llmgw/proto/auth';
import { chat, chatStream, getUsage, KEYS, startTestMesh, TEST_CONFIG, userChat, type TestMesh } from '../src/harness.js';

/*
 * Secrets never leak: 100 keys created through auth, traffic with successes, provider errors,
 * fallbacks, streams and refused keys; then every place the mesh writes (Redis, every JetStream
 * stream, every service's log at debug level, every error message and trailer a caller got) is
 * searched for every API key, the provider secret and the services' NATS and Redis passwords.
 */

const PROVIDER_SECRET = `sk-prov-${randomBytes(24).toString('hex')}`;
let mesh: TestMesh;
const created: string[] = [];
/** What callers were told: error messages and trailers. */
const told: string[] = [];

function remember(err: ServiceError | undefined): void {
  if (!err) return;
  told.push(err.details ?? '', err.message);
  for (const [k, v] of Object.entries(err.metadata?.getMap() ?? {})) told.push(k, Buffer.isBuffer(v) ? v.toString('latin1') : String(v));
}

beforeAll(async () => {
  const configPath = join(mkdtempSync(join(tmpdir(), 'llmgw-secrets-')), 'gateway.yaml');
  writeFileSync(configPath, readFileSync(TEST_CONFIG, 'utf8').replaceAll('api_key: sim-key', 'api_key: ${LEAK_TEST_PROVIDER_KEY}'));
  mesh = await startTestMesh(configPath, { LOG_LEVEL: 'debug', LEAK_TEST_PROVIDER_KEY: PROVIDER_SECRET });
  const auth = mesh.dial(AuthServiceClient, 'auth');
  const admin = { authorization: `Bearer ${KEYS.admin}` };
  try {
    for (let i = 0; i < 100; i++) {
      const r = await callUnary(auth.createKey.bind(auth), { tenantId: i % 2 ? 'loadtest' : 'other', scopes: ['chat'] }, { timeoutMs: 5_000, metadata: admin });
      created.push(r.apiKey);
    }
  } finally {
    auth.close();
  }
}, 120_000);
afterAll(async () => {
  await mesh?.stop();
});

async function everythingInRedis(): Promise<string> {
  const redis = new Redis(mesh.redis.url);
  try {
    const parts: string[] = [];
    for (const key of await redis.keys('*')) {
      parts.push(key);
      const type = await redis.type(key);
      if (type === 'string') parts.push((await redis.getBuffer(key))?.toString('latin1') ?? '');
      else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === 'set') parts.push(...(await redis.smembers(key)));
      else if (type === 'zset') parts.push(...(await redis.zrange(key, 0, -1)));
      else if (type === 'list') parts.push(...(await redis.lrange(key, 0, -1)));
    }
    return parts.join('\n');
  } finally {
    redis.disconnect();
  }
}

async function everythingInJetStream(): Promise<string> {
  const bus = await connectNatsBus({ url: mesh.nats.url, name: 'leak-test', logger: silentLogger() });
  try {
    const parts: string[] = [];
    for (const subject of [Subjects.usageRecorded, Subjects.budgetAlert]) {
      await bus.readAll(subject, (data) => parts.push(Buffer.from(data).toString('latin1')));
    }
    return parts.join('\n');
  } finally {
    await bus.close();
  }
}

function everyLog(): string {
  return readdirSync(mesh.logDir)
    .map((f) => readFileSync(join(mesh.logDir, f), 'utf8'))
    .join('\n');
}

describe('secrets never leak', () => {
  it('no API key or provider secret in Redis, JetStream, any log, any error or trailer', async () => {
    const calls = created.flatMap((key, i) => [
      chat(mesh.gateway, key, userChat(`hello ${i}`, { route: i % 3 === 0 ? 'fallback' : 'chat' })),
      chat(mesh.gateway, key, userChat(`nobody home ${i}`, { route: 'all-dead' })),
      // A mistyped key: refused, and not repeated anywhere either.
      chat(mesh.gateway, `${key}x`, userChat('who am I')),
    ]);
    const results = await Promise.all(calls);
    expect(results.filter((r) => r.ok).length).toBeGreaterThanOrEqual(100);
    expect(results.filter((r) => !r.ok).length).toBeGreaterThanOrEqual(200);
    for (const r of results) remember(r.ok ? undefined : r.error);
    for (const key of created.slice(0, 10)) {
      const s = await chatStream(mesh.gateway, key, userChat('stream please'));
      remember(s.error);
    }
    // Usage events and reconciliation have run (logs at debug include them).
    await new Promise((r) => setTimeout(r, 1_500));

    const haystacks = {
      redis: await everythingInRedis(),
      jetstream: await everythingInJetStream(),
      logs: everyLog(),
      'errors and trailers': told.join('\n'),
    };
    // The search reads real data: debug logs were written, events and counters name the tenant.
    expect(haystacks.logs.length).toBeGreaterThan(10_000);
    expect(haystacks.jetstream).toContain('loadtest');
    expect(haystacks.redis).toContain('{loadtest}');
    expect(haystacks['errors and trailers']).toContain('invalid API key');
    const meshPasswords = [...Object.values(mesh.credentials.redisUsers), ...Object.values(mesh.credentials.natsUsers)];
    const secrets = [PROVIDER_SECRET, ...created, ...created.map((k) => `${k}x`), ...Object.values(KEYS), ...meshPasswords];
    const hits = Object.entries(haystacks).flatMap(([where, text]) => secrets.filter((s) => text.includes(s)).map((s) => `${where}: ${s.slice(0, 12)}…`));
    expect(hits).toEqual([]);
  }, 120_000);
});

describe('scopes through the mesh', () => {
  it('a chat-only key chats but may not read usage; an embed-only key may not chat', async () => {
    const auth = mesh.dial(AuthServiceClient, 'auth');
    const admin = { authorization: `Bearer ${KEYS.admin}` };
    try {
      const make = async (scopes: string[]) => (await callUnary(auth.createKey.bind(auth), { tenantId: 'loadtest', scopes }, { timeoutMs: 5_000, metadata: admin })).apiKey;
      const chatOnly = await make(['chat']);
      const embedOnly = await make(['embed']);
      expect((await chat(mesh.gateway, chatOnly, userChat('hi'))).ok).toBe(true);
      const usage = await getUsage(mesh.usage, chatOnly, {});
      expect(usage.ok ? 'ok' : usage.error.code).toBe(status.PERMISSION_DENIED);
      const denied = await chat(mesh.gateway, embedOnly, userChat('hi'));
      expect(denied.ok ? 'ok' : denied.error.code).toBe(status.PERMISSION_DENIED);
      if (!denied.ok) expect(denied.error.details).toBe('this key lacks the scope "chat"');
    } finally {
      auth.close();
    }
  });
});
