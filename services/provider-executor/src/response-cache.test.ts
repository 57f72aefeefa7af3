import type { RedisKind } from '@llmgw/local-infra';
import { REDIS_KINDS, useRedis, type SuiteRedis } from '@llmgw/local-infra/vitest';
import { silentLogger } from '@llmgw/logging';
import { createMetrics, responseCacheMetrics, type Metrics } from '@llmgw/metrics';
import { startSimulator, type Simulator } from '@llmgw/provider-simulator';
import type { ExecuteChatRequest, ExecuteChatStreamResponse } from '@llmgw/proto/executor';
import { CacheMode, FinishReason } from '@llmgw/proto/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryKey, indexKey, MemoryCacheStore, RedisCacheStore } from './cache-store.js';
import { replayChunks } from './execute.js';
import { cacheHash, cacheUseOf, ResponseCache, type CacheScope, type CacheStore } from './response-cache.js';
import { chatParamsOf } from './normalise.js';
import { attempt, chatParams, chatRequest, ctxOf, executorFor, plan, testProviders, tool, user } from './test-helpers.js';

const POLICY = { ttlMs: 60_000, maxEntries: 100, maxEntryBytes: 64 * 1024, deterministic: true };
const SCOPE: CacheScope = { tenantId: 'acme', route: 'r' };
const cachedPlan = (extra = {}) => plan([attempt('oa-gpt-4o-mini')], { cache: { ...POLICY, ...extra } });
const params = (extra: Parameters<typeof chatParams>[1] = {}) => chatParamsOf(chatParams('what is 2+2?', { temperature: 0, ...extra }));

describe('which requests use the cache', () => {
  it('takes deterministic requests on a route that caches, others only when they ask', () => {
    const p = cachedPlan();
    expect(cacheUseOf('acme', p, params(), CacheMode.CACHE_MODE_UNSPECIFIED)).toMatchObject({ read: true, scope: SCOPE });
    expect(cacheUseOf('acme', p, params({ temperature: 0.7 }), CacheMode.CACHE_MODE_UNSPECIFIED)).toBeUndefined();
    expect(cacheUseOf('acme', p, params({ temperature: undefined }), CacheMode.CACHE_MODE_UNSPECIFIED)).toBeUndefined();
    expect(cacheUseOf('acme', p, params({ temperature: 0.7 }), CacheMode.CACHE_MODE_USE)).toMatchObject({ read: true });
    expect(cacheUseOf('acme', p, params(), CacheMode.CACHE_MODE_BYPASS)).toBeUndefined();
    expect(cacheUseOf('acme', p, params(), CacheMode.CACHE_MODE_REFRESH)).toMatchObject({ read: false });
  });

  it('takes nothing on a route that does not cache, and only asked requests on one that caches on request', () => {
    expect(cacheUseOf('acme', plan([attempt('oa-gpt-4o-mini')]), params(), CacheMode.CACHE_MODE_USE)).toBeUndefined();
    const requested = cachedPlan({ deterministic: false });
    expect(cacheUseOf('acme', requested, params(), CacheMode.CACHE_MODE_UNSPECIFIED)).toBeUndefined();
    expect(cacheUseOf('acme', requested, params(), CacheMode.CACHE_MODE_USE)).toBeDefined();
  });
});

describe('the cache key', () => {
  const hash = (p = params(), tenant = 'acme', pl = cachedPlan()) => cacheHash({ tenantId: tenant, route: pl.route }, pl, p);

  it('is the same for the same request, whatever order a tool schema lists its keys in and whoever the end user is', () => {
    const a = params({ tools: [tool('f', { type: 'object', properties: { x: { type: 'string' } } })], user: 'u1' });
    const b = params({ tools: [tool('f', { properties: { x: { type: 'string' } }, type: 'object' })], user: 'u2' });
    expect(hash(a)).toBe(hash(b));
  });

  it('differs for every parameter that shapes the answer, for another tenant and for another plan', () => {
    const base = hash();
    const changed = [
      hash(params({ messages: [user('what is 2+3?')] })),
      hash(params({ maxTokens: 257 })),
      hash(params({ temperature: 0.1 })),
      hash(params({ topP: 0.5 })),
      hash(params({ stop: ['\n'] })),
      hash(params({ tools: [tool('f')] })),
      hash(params(), 'globex'),
      hash(params(), 'acme', plan([attempt('an-claude-haiku-4-5')], { cache: POLICY })),
    ];
    for (const h of changed) expect(h).not.toBe(base);
    expect(new Set(changed).size).toBe(changed.length);
  });
});

// As the executor logs in: its own ACL user, which may touch only its prefix.
const redis: Record<RedisKind, SuiteRedis> = { single: useRedis('single', 'provider-executor'), cluster: useRedis('cluster', 'provider-executor') };

/** One contract, every store: what monolithic mode and microservices mode (on one Redis or a cluster) promise. */
describe.each([
  ['memory', (now: () => number) => new MemoryCacheStore(now)],
  ...REDIS_KINDS.map((kind) => [`redis ${kind}`, () => new RedisCacheStore(redis[kind]())] as const),
] as const)('%s cache store', (name, make) => {
  const scope = (route: string): CacheScope => ({ tenantId: `t-${name}`, route });

  it('returns what was put, per scope, and nothing for another tenant', async () => {
    const s = make(Date.now);
    await s.put(scope('a'), 'h1', 'answer', 60_000, 10);
    expect(await s.get(scope('a'), 'h1')).toBe('answer');
    expect(await s.get(scope('b'), 'h1')).toBeUndefined();
    expect(await s.get({ tenantId: 'other', route: 'a' }, 'h1')).toBeUndefined();
    s.close();
  });

  it('keeps at most max_entries per scope, dropping the oldest', async () => {
    const s = make(Date.now);
    for (let i = 0; i < 5; i++) await s.put(scope('cap'), `h${i}`, `v${i}`, 60_000, 3);
    const held = await Promise.all([0, 1, 2, 3, 4].map((i) => s.get(scope('cap'), `h${i}`)));
    expect(held).toEqual([undefined, undefined, 'v2', 'v3', 'v4']);
    s.close();
  });

  it('forgets an entry after its TTL', async () => {
    let now = Date.now();
    const s = make(() => now);
    await s.put(scope('ttl'), 'h', 'v', 200, 10);
    expect(await s.get(scope('ttl'), 'h')).toBe('v');
    now += 250;
    await new Promise((r) => setTimeout(r, 250));
    expect(await s.get(scope('ttl'), 'h')).toBeUndefined();
    s.close();
  });
});

describe('redis cache keys', () => {
  it('share one hash tag per tenant, with tenant and route encoded so neither forges a tag', () => {
    const evil = { tenantId: 'a}b', route: 'x:e:y' };
    expect(entryKey(evil, 'H')).toBe('llmgw:cache:{a%7Db}:x%3Ae%3Ay:e:H');
    expect(indexKey(evil)).toBe('llmgw:cache:{a%7Db}:x%3Ae%3Ay:i');
  });

  it('index what they hold and expire with the route TTL', async () => {
    const s = new RedisCacheStore(redis.single());
    await s.put({ tenantId: 'keys', route: 'r' }, 'h', 'v', 5_000, 10);
    const admin = redis.single.admin();
    expect(await admin.zrange(indexKey({ tenantId: 'keys', route: 'r' }), 0, -1)).toEqual([entryKey({ tenantId: 'keys', route: 'r' }, 'h')]);
    expect(await admin.pttl(entryKey({ tenantId: 'keys', route: 'r' }, 'h'))).toBeGreaterThan(4_000);
    s.close();
  });
});

/** A store whose every call fails, as a Redis that is down does. */
class DownStore implements CacheStore {
  async get(): Promise<string | undefined> {
    throw new Error('connection refused');
  }
  async put(): Promise<void> {
    throw new Error('connection refused');
  }
  close(): void {}
}

describe('the executor with a response cache', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator();
  });
  afterAll(async () => sim?.close());

  function setup(store: CacheStore = new MemoryCacheStore()) {
    const metrics = createMetrics('provider-executor', { defaultMetrics: false });
    const cache = new ResponseCache({ store, logger: silentLogger(), metrics: responseCacheMetrics(metrics) });
    return { ...executorFor(testProviders(sim.url), { cache }), store, metrics };
  }
  const metric = async (m: Metrics, name: string, labels: string) => {
    const line = (await m.registry.metrics()).split('\n').find((l) => l.startsWith(`${name}{${labels}`));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  const request = (id: string, extra: Parameters<typeof chatParams>[1] = {}, content = 'what is the capital of France?'): ExecuteChatRequest => ({
    ...chatRequest(content, [attempt('oa-gpt-4o-mini')], { temperature: 0, ...extra }, { cache: POLICY }, id),
  });
  /** The store is written after the answer went out: wait until it holds the request's entry. */
  async function stored(store: CacheStore, r: ExecuteChatRequest): Promise<void> {
    const use = cacheUseOf(r.tenantId, r.plan!, chatParamsOf(r.params), r.params!.cache);
    for (let i = 0; i < 100 && (await store.get(use!.scope, use!.hash)) === undefined; i++) await new Promise((res) => setTimeout(res, 10));
  }
  async function collect(ex: ReturnType<typeof setup>['executor'], r: ExecuteChatRequest): Promise<ExecuteChatStreamResponse[]> {
    const out: ExecuteChatStreamResponse[] = [];
    await ex.executeChatStream(r, ctxOf(), async (m) => void out.push(m));
    return out;
  }

  it('answers a second identical request from the cache: no provider call, no cost, marked in the routing record and the usage event', async () => {
    const { executor, usage, store, metrics, registry } = setup();
    const first = await executor.executeChat(request('c-1'), ctxOf());
    expect(first.response?.routing?.cacheHit).toBe(false);
    await stored(store, request('c-1'));
    const billed = sim.bill().total.requests;

    const second = await executor.executeChat(request('c-2'), ctxOf());
    expect(sim.bill().total.requests).toBe(billed);
    expect(second.response).toMatchObject({
      id: 'c-2',
      model: first.response?.model,
      provider: first.response?.provider,
      message: first.response?.message,
      finishReason: first.response?.finishReason,
      usage: { inputTokens: 0, outputTokens: 0, costMicros: 0 },
      routing: { cacheHit: true, attempts: [], fallbackUsed: false, chosenModel: 'oa-gpt-4o-mini' },
    });
    const [hitEvent] = usage.of('c-2');
    expect(hitEvent).toMatchObject({ cacheHit: true, cacheSavedCostMicros: first.response?.usage?.costMicros, costMicros: 0, inputTokens: 0, attempts: [], success: true, attemptCount: 0 });
    expect(first.response?.usage?.costMicros).toBeGreaterThan(0);
    expect(usage.of('c-1')[0]).toMatchObject({ cacheHit: false, cacheSavedCostMicros: 0 });
    expect(await metric(metrics, 'llmgw_response_cache_lookups_total', 'route="r",result="hit"')).toBe(1);
    expect(await metric(metrics, 'llmgw_response_cache_lookups_total', 'route="r",result="miss"')).toBe(1);
    expect(await metric(metrics, 'llmgw_response_cache_saved_micros_total', 'route="r"')).toBe(first.response?.usage?.costMicros);
    await registry.close();
  });

  it('misses on a different parameter, and neither reads nor writes when the caller bypasses it', async () => {
    const { executor, store, registry } = setup();
    await executor.executeChat(request('p-1'), ctxOf());
    await stored(store, request('p-1'));
    const other = await executor.executeChat(request('p-2', { maxTokens: 300 }), ctxOf());
    expect(other.response?.routing?.cacheHit).toBe(false);
    const bypassed = await executor.executeChat(request('p-3', { cache: CacheMode.CACHE_MODE_BYPASS }), ctxOf());
    expect(bypassed.response?.routing?.cacheHit).toBe(false);
    await registry.close();
  });

  it('replays a cached answer as a stream: the same text in pieces, then the finish with zero usage and the routing record', async () => {
    const { executor, store, registry } = setup();
    const prompt = 'tell me a long story [[long]]';
    const live = await collect(executor, request('s-1', {}, prompt));
    await stored(store, request('s-1', {}, prompt));
    const billed = sim.bill().total.requests;
    const replayed = await collect(executor, request('s-2', {}, prompt));
    expect(sim.bill().total.requests).toBe(billed);
    const text = (ms: ExecuteChatStreamResponse[]) => ms.map((m) => m.chunk?.contentDelta ?? '').join('');
    expect(text(replayed)).toBe(text(live));
    expect(replayed.length).toBeGreaterThan(2);
    const last = replayed[replayed.length - 1]?.chunk;
    expect(last).toMatchObject({ finishReason: live[live.length - 1]?.chunk?.finishReason, usage: { costMicros: 0, outputTokens: 0 }, routing: { cacheHit: true } });
    // A unary request with the same parameters finds the streamed answer.
    const unary = await executor.executeChat(request('s-3', {}, prompt), ctxOf());
    expect(unary.response?.message?.content).toBe(text(live));
    await registry.close();
  });

  it('keeps a streamed tool call and replays it whole', async () => {
    const { executor, store, registry } = setup();
    const toolRequest = (id: string) => request(id, { tools: [tool('lookup', { type: 'object', properties: { q: { type: 'string' } } })] }, 'look it up [[tool]]');
    const live = await executor.executeChat(toolRequest('t-1'), ctxOf());
    expect(live.response?.message?.toolCalls.length).toBe(1);
    await stored(store, toolRequest('t-1'));
    const replayed = await collect(executor, toolRequest('t-2'));
    const deltas = replayed.flatMap((m) => m.chunk?.toolCallDeltas ?? []);
    expect(deltas.map((d) => ({ id: d.id, name: d.name, argumentsJson: d.argumentsJsonDelta }))).toEqual(live.response?.message?.toolCalls);
    await registry.close();
  });

  it('does not keep a refusal, and a refresh asks the provider and replaces the entry', async () => {
    const { executor, store, registry } = setup();
    await executor.executeChat(request('f-1', {}, 'say something bad [[refuse]]'), ctxOf());
    await new Promise((r) => setTimeout(r, 50));
    const again = await executor.executeChat(request('f-2', {}, 'say something bad [[refuse]]'), ctxOf());
    expect(again.response?.finishReason).toBe(FinishReason.FINISH_REASON_CONTENT_FILTER);
    expect(again.response?.routing?.cacheHit).toBe(false);

    await executor.executeChat(request('r-1'), ctxOf());
    await stored(store, request('r-1'));
    const billed = sim.bill().total.requests;
    const refreshed = await executor.executeChat(request('r-2', { cache: CacheMode.CACHE_MODE_REFRESH }), ctxOf());
    expect(refreshed.response?.routing?.cacheHit).toBe(false);
    expect(sim.bill().total.requests).toBe(billed + 1);
    await registry.close();
  });

  it('answers from the provider when the cache is down, counting the errors', async () => {
    const { executor, usage, metrics, registry } = setup(new DownStore());
    for (const id of ['d-1', 'd-2']) {
      const r = await executor.executeChat(request(id), ctxOf());
      expect(r.error).toBeUndefined();
      expect(r.response?.routing?.cacheHit).toBe(false);
      expect(r.response?.usage?.costMicros).toBeGreaterThan(0);
    }
    await new Promise((r) => setTimeout(r, 20));
    expect(usage.of('d-2')).toHaveLength(1);
    expect(await metric(metrics, 'llmgw_response_cache_lookups_total', 'route="r",result="error"')).toBe(2);
    expect(await metric(metrics, 'llmgw_response_cache_stores_total', 'route="r",result="error"')).toBe(2);
    await registry.close();
  });

  it('does not keep an answer over the route max_entry_bytes', async () => {
    const { executor, metrics, registry } = setup();
    const small = (id: string) => chatRequest('tell me a long story [[long]]', [attempt('oa-gpt-4o-mini')], { temperature: 0 }, { cache: { ...POLICY, maxEntryBytes: 100 } }, id);
    await executor.executeChat(small('b-1'), ctxOf());
    const again = await executor.executeChat(small('b-2'), ctxOf());
    expect(again.response?.routing?.cacheHit).toBe(false);
    expect(await metric(metrics, 'llmgw_response_cache_stores_total', 'route="r",result="too_large"')).toBe(2);
    await registry.close();
  });
});

describe('replayed stream pieces', () => {
  it('cut on code points, never inside a surrogate pair', () => {
    const text = '😀'.repeat(100);
    const pieces = replayChunks(text);
    expect(pieces.join('')).toBe(text);
    expect(pieces.every((p) => !/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/.test(p))).toBe(true);
    expect(replayChunks('')).toEqual([]);
  });
});
