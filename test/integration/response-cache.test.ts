import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, redisUrl } from '@llmgw/local-infra';
import { CacheMode, UsageGroupBy, type ChatRequest, type ChatResponse } from '@llmgw/proto/v1';
import { chat, chatStream, eventually, getUsage, startTestMesh, userChat, type TestMesh } from '../src/harness.js';

/*
 * The exact response cache through the mesh: the executor keeps answers of cacheable requests per
 * tenant and route in Redis; a hit calls no provider (the simulator's bill does not move), costs
 * nothing, says so in the routing record, and the accountant counts it with what it saved.
 */
const FIXTURE = fileURLToPath(new URL('../fixtures/response-cache.test.yaml', import.meta.url));
const KEYS = { acme: 'sk-cache-acme-000000000000000', globex: 'sk-cache-globex-0000000000000', admin: 'sk-cache-admin-00000000000000' };

let mesh: TestMesh;
beforeAll(async () => {
  mesh = await startTestMesh(FIXTURE, {}, { metrics: true });
}, 60_000);
afterAll(async () => {
  await mesh?.stop();
});

const billed = () => mesh.simulator.bill().total.requests;
const stores = () => mesh.metric('provider-executor', 'llmgw_response_cache_stores_total', { result: 'stored' });

async function ask(key: string, req: ChatRequest): Promise<ChatResponse> {
  const r = await chat(mesh.gateway, key, req);
  if (!r.ok) throw r.error;
  return r.value;
}

/** The executor stores an answer after it went out: a miss that is kept, awaited until it is. */
async function askAndKeep(key: string, req: ChatRequest): Promise<ChatResponse> {
  const before = await stores();
  const r = await ask(key, req);
  await eventually(stores, (n) => n > before);
  return r;
}

const faq = (content: string, extra: Partial<ChatRequest> = {}) => userChat(content, { route: 'faq', temperature: 0, ...extra });

describe('the response cache', () => {
  it('answers a second identical request without a provider, at no cost, and GetUsage counts the hit and its saving', async () => {
    const first = await askAndKeep(KEYS.acme, faq('What are your opening hours?'));
    expect(first.routing?.cacheHit).toBe(false);
    const before = billed();
    const second = await ask(KEYS.acme, faq('What are your opening hours?'));
    expect(billed()).toBe(before);
    expect(second.message?.content).toBe(first.message?.content);
    expect(second).toMatchObject({ model: first.model, provider: first.provider, usage: { inputTokens: 0, outputTokens: 0, costMicros: 0 }, routing: { cacheHit: true, attempts: [], route: 'faq' } });
    expect(second.id).not.toBe(first.id);

    const rows = await eventually(
      async () => {
        const r = await getUsage(mesh.usage, KEYS.admin, { route: 'faq', groupBy: [UsageGroupBy.USAGE_GROUP_BY_ROUTE] });
        if (!r.ok) throw r.error;
        return r.value.rows;
      },
      (rs) => rs[0]?.requests === 2,
    );
    // Money: what the accountant holds is what the provider billed, the hit adding nothing.
    expect(rows[0]).toMatchObject({
      requests: 2,
      cacheHits: 1,
      cacheSavedCostMicros: first.usage?.costMicros,
      costMicros: first.usage?.costMicros,
      inputTokens: first.usage?.inputTokens,
      outputTokens: first.usage?.outputTokens,
    });
    expect(await mesh.metric('provider-executor', 'llmgw_response_cache_lookups_total', { route: 'faq', result: 'hit' })).toBe(1);
  });

  it('misses on another parameter and for another tenant; a bypass, a sampled request or an unasked one on a route that caches on request goes to the provider', async () => {
    await askAndKeep(KEYS.acme, faq('Do you ship abroad?'));
    const misses: [string, () => Promise<ChatResponse>][] = [
      ['max_tokens', () => ask(KEYS.acme, faq('Do you ship abroad?', { maxTokens: 20 }))],
      ['another tenant', () => ask(KEYS.globex, faq('Do you ship abroad?'))],
      ['bypass', () => ask(KEYS.acme, faq('Do you ship abroad?', { cache: CacheMode.CACHE_MODE_BYPASS }))],
      ['temperature 0.7', () => ask(KEYS.acme, faq('Do you ship abroad?', { temperature: 0.7 }))],
      ['temperature 0.7 again (not kept)', () => ask(KEYS.acme, faq('Do you ship abroad?', { temperature: 0.7 }))],
      ['unasked on "asked"', () => ask(KEYS.acme, faq('Do you ship abroad?', { route: 'asked' }))],
      ['unasked on "asked" again', () => ask(KEYS.acme, faq('Do you ship abroad?', { route: 'asked' }))],
    ];
    for (const [what, send] of misses) {
      const before = billed();
      const r = await send();
      expect(r.routing?.cacheHit, what).toBe(false);
      expect(billed(), what).toBe(before + 1);
    }
    // Asked for, the route that caches on request keeps it.
    await askAndKeep(KEYS.acme, faq('Do you ship abroad?', { route: 'asked', cache: CacheMode.CACHE_MODE_USE, temperature: 0.9 }));
    const hit = await ask(KEYS.acme, faq('Do you ship abroad?', { route: 'asked', cache: CacheMode.CACHE_MODE_USE, temperature: 0.9 }));
    expect(hit.routing?.cacheHit).toBe(true);
  });

  it('forgets an answer after the route TTL', async () => {
    const req = faq('Is there parking?', { route: 'brief' });
    await askAndKeep(KEYS.acme, req);
    expect((await ask(KEYS.acme, req)).routing?.cacheHit).toBe(true);
    await new Promise((r) => setTimeout(r, 1_200));
    const before = billed();
    expect((await ask(KEYS.acme, req)).routing?.cacheHit).toBe(false);
    expect(billed()).toBe(before + 1);
  });

  it('replays a cached answer on ChatStream, and the OpenAI surface finds the same entry and reports the hit', async () => {
    const req = faq('Tell me about your return policy [[long]]');
    const before = await stores();
    const live = await chatStream(mesh.gateway, KEYS.acme, req);
    expect(live.error).toBeUndefined();
    await eventually(stores, (n) => n > before);
    const billedBefore = billed();
    const replayed = await chatStream(mesh.gateway, KEYS.acme, req);
    expect(replayed.error).toBeUndefined();
    expect(billed()).toBe(billedBefore);
    const text = (cs: typeof live.chunks) => cs.map((c) => c.contentDelta).join('');
    expect(text(replayed.chunks)).toBe(text(live.chunks));
    expect(text(live.chunks).length).toBeGreaterThan(150);
    expect(replayed.chunks.length).toBeGreaterThan(3);
    expect(replayed.chunks.at(-1)).toMatchObject({ usage: { costMicros: 0 }, routing: { cacheHit: true } });

    const http = await fetch(`${mesh.httpBaseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.acme}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'faq', temperature: 0, messages: [{ role: 'user', content: 'Tell me about your return policy [[long]]' }] }),
    });
    expect(http.status).toBe(200);
    const body = (await http.json()) as { choices: { message: { content: string } }[]; llmgw: { cost_micros: number; routing: { cache_hit: boolean } } };
    expect(body.llmgw.routing.cache_hit).toBe(true);
    expect(body.llmgw.cost_micros).toBe(0);
    expect(body.choices[0]?.message.content).toBe(text(live.chunks));
    expect(JSON.parse(http.headers.get('x-llmgw-routing') ?? '{}').cache_hit).toBe(true);
    expect(billed()).toBe(billedBefore);

    const bypass = await fetch(`${mesh.httpBaseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.acme}`, 'content-type': 'application/json', 'x-llmgw-cache': 'bypass' },
      body: JSON.stringify({ model: 'faq', temperature: 0, messages: [{ role: 'user', content: 'Tell me about your return policy [[long]]' }] }),
    });
    expect(((await bypass.json()) as typeof body).llmgw.routing.cache_hit).toBe(false);
    expect(billed()).toBe(billedBefore + 1);
  });

  it('with the executor\'s Redis unreachable, cacheable requests are answered by the provider, never failed', async () => {
    const deadPort = await freePort();
    await mesh.services.restart('provider-executor', { REDIS_URL: redisUrl('provider-executor', mesh.credentials.redisUsers['provider-executor'], deadPort) });
    // The edge reconnects to the restarted executor (its channel backs off after the refused connections).
    await eventually(
      () => chat(mesh.gateway, KEYS.acme, userChat('are you back?', { route: 'plain' })),
      (r) => r.ok,
      15_000,
    );
    for (let i = 0; i < 2; i++) {
      const before = billed();
      const r = await ask(KEYS.acme, faq('What are your opening hours?'));
      expect(r.routing?.cacheHit).toBe(false);
      expect(r.usage?.costMicros).toBeGreaterThan(0);
      expect(billed()).toBe(before + 1);
    }
    expect(await mesh.metric('provider-executor', 'llmgw_response_cache_lookups_total', { route: 'faq', result: 'error' })).toBe(2);
  });
});
