import { executorSectionsSchema, parseSections } from '@llmgw/config';
import { meshCredentials, redisUrl, startRedisServer } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { ChatParams, type ExecuteChatRequest } from '@llmgw/proto/executor';
import { Plan, Tokenizer } from '@llmgw/proto/router';
import { CacheMode, Role, type UsageRecorded } from '@llmgw/proto/v1';
import { cacheUseOf, CircuitBreaker, DEFAULT_BREAKER, Executor, RedisCacheStore, registryFromProviders, ResponseCache } from '@llmgw/provider-executor';
import { startSimulator } from '@llmgw/provider-simulator';
import { connectRedis } from '@llmgw/redis';
import { countTokens } from '@llmgw/tokens';
import { percentile, table } from './stats.js';

/**
 * `npm run bench -- cache`: what the response cache adds to a request it does not hold (target:
 * p50 ≤ 0.3 ms on a miss). In process, against a real redis-server on loopback logged in as the
 * executor's ACL user: the executor's lookup alone (the key's hash of the normalised request, then
 * GET) for a short and a 2,000-token prompt, missing and hitting; then whole executeChat calls
 * against the simulator without a cache and with one every call misses (and stores), taking turns
 * call by call so that both see the same machine.
 */
const LOOKUPS = Number(process.env.BENCH_CACHE_LOOKUPS ?? 20_000);
const CALLS = Number(process.env.BENCH_CACHE_CALLS ?? 3_000);
const WARM_UP = 500;

const creds = meshCredentials();
const [server, sim] = await Promise.all([startRedisServer({ users: creds.redisUsers }), startSimulator()]);
const redis = await connectRedis(redisUrl('provider-executor', creds.redisUsers['provider-executor'], server.port), { logger: silentLogger() });
const store = new RedisCacheStore(redis);
const cache = new ResponseCache({ store, logger: silentLogger() });

const POLICY = { ttlMs: 600_000, maxEntries: 1_000_000, maxEntryBytes: 64 * 1024, deterministic: true };
const pricing = { inputPerMillionUsd: 0.15, outputPerMillionUsd: 0.6, cachedInputPerMillionUsd: 0.15, cacheWriteInputPerMillionUsd: 0.15 };
/** A one-model plan as the router makes one; unset fields as the router leaves them. */
const plan = (cached: boolean): Plan =>
  Plan.fromPartial({
    route: 'faq',
    rule: 'default',
    attempts: [{ model: 'small', provider: 'sim', upstreamModel: 'gpt-4o-mini', timeoutMs: 5_000, pricing, tokenizer: Tokenizer.TOKENIZER_OPENAI, contextTokens: 128_000, maxOutputTokens: 16_000 }],
    maxTokensCap: 4096,
    defaultMaxTokens: 16,
    timeoutMs: 10_000,
    promptTokensMax: Number.MAX_SAFE_INTEGER,
    stickyBucketMax: 9_999,
    cache: cached ? POLICY : undefined,
  });
const CACHED_PLAN = plan(true);

const user = (content: string) => ({ role: Role.ROLE_USER, content, name: '', toolCalls: [], toolCallId: '' });
/** A request as the adapters see it (what the executor hashes). */
const adapterParams = (content: string): Parameters<typeof cacheUseOf>[2] => ({
  messages: [user(content)],
  maxTokens: 16,
  temperature: 0,
  topP: undefined,
  stop: [],
  responseFormat: { type: 'text' },
  tools: [],
  toolChoice: { type: 'auto' },
  user: '',
});

const SHORT = 'What are your opening hours on public holidays?';
let LONG = '';
while (countTokens(LONG) < 2_000) LONG += 'The quarterly report covers revenue, churn and the support backlog; please summarise the findings and list three risks. ';

/** The executor's lookup, as executeChat does it before planning any attempt. */
async function lookup(content: string): Promise<boolean> {
  const use = cacheUseOf('bench', CACHED_PLAN, adapterParams(content), CacheMode.CACHE_MODE_UNSPECIFIED);
  return (await cache.lookup(use!)) !== undefined;
}

async function timeLookups(content: string, hit: boolean): Promise<number[]> {
  const texts = Array.from({ length: WARM_UP + LOOKUPS }, (_, i) => (hit ? content : `${content} #${i}`));
  if (hit) {
    const use = cacheUseOf('bench', CACHED_PLAN, adapterParams(content), CacheMode.CACHE_MODE_UNSPECIFIED)!;
    await store.put(use.scope, use.hash, JSON.stringify({ model: 'small', provider: 'sim', content: 'Nine to five.', toolCalls: [], finishReason: 1, costMicros: 12 }), POLICY.ttlMs, POLICY.maxEntries);
  }
  const ms: number[] = [];
  for (const [i, text] of texts.entries()) {
    const t = process.hrtime.bigint();
    const found = await lookup(text);
    if (i >= WARM_UP) ms.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (found !== hit) throw new Error(`lookup ${i} was a ${found ? 'hit' : 'miss'}`);
  }
  return ms.sort((a, b) => a - b);
}

const lookupRows: (string | number)[][] = [];
for (const [name, text] of [
  ['short prompt', SHORT],
  ['2,000-token prompt', LONG],
] as const) {
  for (const hit of [false, true]) {
    const ms = await timeLookups(text, hit);
    lookupRows.push([name, hit ? 'hit' : 'miss', countTokens(text), percentile(ms, 50).toFixed(3), percentile(ms, 95).toFixed(3), percentile(ms, 99).toFixed(3)]);
  }
}

// Whole calls: the same executor code with and without the cache, against the simulator.
const providers = parseSections(executorSectionsSchema, `providers:\n  sim: { kind: openai, base_url: "${sim.url}/v1", api_key: sim-key }\n`, 'bench', {}).providers;
const registry = registryFromProviders(providers);
const sink = { note: async (_: UsageRecorded) => undefined, publish: (_: UsageRecorded) => undefined };
const executor = new Executor({ providers, registry, breaker: new CircuitBreaker({ ...DEFAULT_BREAKER, now: Date.now }), logger: silentLogger(), now: Date.now, usage: sink, cache });
const ctx = { signal: new AbortController().signal, remainingMs: () => Infinity, logger: silentLogger() };
const request = (i: number, cached: boolean): ExecuteChatRequest => ({
  requestId: `bench-${cached ? 'c' : 'n'}-${i}`,
  tenantId: 'bench',
  keyId: 'k',
  request: undefined,
  plan: cached ? CACHED_PLAN : plan(false),
  labels: undefined,
  // Unset fields are what the edge sends for none: no stop, no tools, no response format.
  params: ChatParams.fromPartial({ messages: [user(`${SHORT} (${cached ? 'cached' : 'plain'} call ${i})`)], maxTokens: 16, temperature: 0 }),
});
const calls = { plain: [] as number[], cached: [] as number[] };
for (let i = 0; i < WARM_UP + CALLS; i++) {
  for (const cached of i % 2 === 0 ? [false, true] : [true, false]) {
    const t = process.hrtime.bigint();
    const r = await executor.executeChat(request(i, cached), ctx);
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (r.error || r.response?.routing?.cacheHit) throw new Error(`call ${i} did not go to the provider`);
    if (i >= WARM_UP) calls[cached ? 'cached' : 'plain'].push(ms);
  }
}
for (const v of Object.values(calls)) v.sort((a, b) => a - b);
const p50 = (v: number[]) => percentile(v, 50);

process.stdout.write(`\n## Response cache lookup, in process against redis-server on loopback, ${LOOKUPS.toLocaleString('en')} lookups each (target: miss p50 ≤ 0.3 ms)\n\n`);
process.stdout.write(`${table(['prompt', 'result', 'tokens', 'p50 ms', 'p95 ms', 'p99 ms'], lookupRows)}\n`);
process.stdout.write(`\n## executeChat against the simulator, ${CALLS.toLocaleString('en')} calls each, taking turns: no cache vs a cache every call misses\n\n`);
process.stdout.write(
  `${table(
    ['executor', 'p50 ms', 'p95 ms', 'p99 ms'],
    [
      ['no cache', p50(calls.plain).toFixed(3), percentile(calls.plain, 95).toFixed(3), percentile(calls.plain, 99).toFixed(3)],
      ['cache, every call a miss', p50(calls.cached).toFixed(3), percentile(calls.cached, 95).toFixed(3), percentile(calls.cached, 99).toFixed(3)],
      ['difference of the p50s', (p50(calls.cached) - p50(calls.plain)).toFixed(3), '', ''],
    ],
  )}\n`,
);

store.close();
redis.disconnect();
await Promise.all([registry.close(), sim.close(), server.stop()]);
