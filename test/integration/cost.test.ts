import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countPromptTokens, type SimulatorBill } from '@llmgw/provider-simulator';
import { UsageGroupBy, UsageOrderBy, type GetUsageRequest, type UsageRow } from '@llmgw/proto/v1';
import { chat, chatStream, eventually, getUsage, startTestMesh, userChat, type TestMesh } from '../src/harness.js';

/*
 * Cost by every dimension, through the mesh: requests with end users, prompt versions and a
 * feature label, on three provider kinds, some served from the prompt cache, some writing it,
 * some reasoning. GetUsage by each dimension must match what was sent, priced independently
 * here from the fixture's prices, and its total must equal the simulator's own bill exactly.
 */

const FIXTURE = fileURLToPath(new URL('../fixtures/cost.test.yaml', import.meta.url));
const APP = 'sk-cost-app-0000000000000000';
const BATCH = 'sk-cost-batch-00000000000000';
const ADMIN = 'sk-cost-admin-00000000000000';

/** The fixture's prices, in micro-dollars per token (= USD per million tokens). */
const PRICES = {
  gpt: { provider: 'sim-openai', upstream: 'cost-gpt', input: 4, cached: 2, write: 4, output: 16 },
  claude: { provider: 'sim-anthropic', upstream: 'cost-claude', input: 3, cached: 1, write: 5, output: 15 },
  gemini: { provider: 'sim-gemini', upstream: 'cost-gemini', input: 2, cached: 1, write: 2, output: 6 },
} as const;
type Route = keyof typeof PRICES;

interface Sent {
  key: typeof APP | typeof BATCH;
  route: Route;
  user: string;
  promptVersion: string;
  feature: string;
  cached?: number;
  written?: number;
  reasoning?: number;
  answer: number;
  via: 'unary' | 'stream' | 'http';
}

const SENT: Sent[] = [
  { key: APP, route: 'gpt', user: 'ann', promptVersion: 'triage-v1', feature: 'search', cached: 8, reasoning: 20, answer: 5, via: 'unary' },
  { key: APP, route: 'gpt', user: 'ann', promptVersion: 'triage-v2', feature: 'search', answer: 9, via: 'stream' },
  { key: APP, route: 'claude', user: 'bob', promptVersion: 'triage-v1', feature: 'summaries', cached: 10, written: 6, answer: 7, via: 'unary' },
  { key: BATCH, route: 'claude', user: 'bob', promptVersion: 'triage-v2', feature: '', written: 12, reasoning: 15, answer: 4, via: 'stream' },
  { key: BATCH, route: 'gemini', user: 'cy', promptVersion: 'triage-v1', feature: 'search', cached: 9, reasoning: 11, answer: 6, via: 'unary' },
  { key: APP, route: 'gpt', user: 'dee', promptVersion: 'triage-v2', feature: 'summaries', cached: 4, reasoning: 3, answer: 8, via: 'http' },
  { key: APP, route: 'gemini', user: '', promptVersion: '', feature: '', answer: 3, via: 'unary' },
];

const contentOf = (s: Sent) =>
  `Please triage this support ticket about a billing problem on the last invoice [[tokens:${s.answer}]]` +
  (s.cached ? ` [[cached:${s.cached}]]` : '') +
  (s.written ? ` [[cache_write:${s.written}]]` : '') +
  (s.reasoning ? ` [[reasoning:${s.reasoning}]]` : '');

interface Expected {
  requests: number;
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens: number;
  cacheWriteInputTokens: number;
  reasoningTokens: number;
  costMicros: number;
}

/**
 * What a request costs by the providers' conventions, worked out here: cache reads and writes
 * are parts of the input, priced at their own rates; reasoning is output (only OpenAI and Gemini
 * report it apart); only Anthropic reports cache writes.
 */
function expectedOf(s: Sent): Expected {
  const p = PRICES[s.route];
  const input = countPromptTokens([contentOf(s)]);
  const cached = s.cached ?? 0;
  const written = s.route === 'claude' ? (s.written ?? 0) : 0;
  const output = s.answer + (s.reasoning ?? 0);
  return {
    requests: 1,
    inputTokens: input,
    outputTokens: output,
    cachedInputTokens: cached,
    cacheWriteInputTokens: written,
    reasoningTokens: s.route === 'claude' ? 0 : (s.reasoning ?? 0),
    costMicros: (input - cached - written) * p.input + cached * p.cached + written * p.write + output * p.output,
  };
}

function sumOf(sent: readonly Sent[]): Expected {
  const total: Expected = { requests: 0, inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteInputTokens: 0, reasoningTokens: 0, costMicros: 0 };
  for (const s of sent) {
    const e = expectedOf(s);
    for (const k of Object.keys(total) as (keyof Expected)[]) total[k] += e[k];
  }
  return total;
}

/** Expected rows grouped by `keyOf`, sorted by key. */
function groupedBy(keyOf: (s: Sent) => string): [string, Expected][] {
  const keys = [...new Set(SENT.map(keyOf))].sort();
  return keys.map((k) => [k, sumOf(SENT.filter((s) => keyOf(s) === k))]);
}

const countersOf = (r: UsageRow | undefined): Expected => ({
  requests: r?.requests ?? -1,
  inputTokens: r?.inputTokens ?? -1,
  outputTokens: r?.outputTokens ?? -1,
  cachedInputTokens: r?.cachedInputTokens ?? -1,
  cacheWriteInputTokens: r?.cacheWriteInputTokens ?? -1,
  reasoningTokens: r?.reasoningTokens ?? -1,
  costMicros: r?.costMicros ?? -1,
});

let mesh: TestMesh;

async function usage(req: Partial<GetUsageRequest>, key = APP) {
  const r = await getUsage(mesh.usage, key, req);
  if (!r.ok) throw r.error;
  return r.value;
}

beforeAll(async () => {
  mesh = await startTestMesh(FIXTURE);
  for (const s of SENT) {
    const req = userChat(contentOf(s), { route: s.route, user: s.user, promptVersion: s.promptVersion, metadata: s.feature ? { feature: s.feature, ticket: 'T-1' } : { ticket: 'T-1' } });
    if (s.via === 'unary') {
      const r = await chat(mesh.gateway, s.key, req);
      if (!r.ok) throw r.error;
    } else if (s.via === 'stream') {
      const r = await chatStream(mesh.gateway, s.key, req);
      if (r.error) throw r.error;
    } else {
      // The OpenAI surface: `user` and `metadata` in the body, the prompt version in a header.
      const openai = new OpenAI({ apiKey: s.key, baseURL: mesh.httpBaseUrl, maxRetries: 0 });
      await openai.chat.completions.create(
        { model: s.route, messages: [{ role: 'user', content: contentOf(s) }], user: s.user, metadata: { feature: s.feature } },
        { headers: { 'x-llmgw-prompt-version': s.promptVersion } },
      );
    }
  }
  // Every event counted before the queries.
  await eventually(
    () => usage({}),
    (r) => r.total?.requests === SENT.length,
    15_000,
  );
}, 90_000);
afterAll(async () => {
  await mesh?.stop();
});

describe('cost by every dimension, through the mesh', () => {
  it('totals equal the simulator\'s bill exactly: requests, every token kind, and the bill priced', async () => {
    const bill = (await (await fetch(`${mesh.simulator.url}/_simulator/bill`)).json()) as SimulatorBill;
    const total = (await usage({})).total;
    expect(countersOf(total)).toEqual(sumOf(SENT));
    expect({
      requests: total?.requests,
      input_tokens: total?.inputTokens,
      output_tokens: total?.outputTokens,
      cached_input_tokens: total?.cachedInputTokens,
      cache_write_input_tokens: total?.cacheWriteInputTokens,
      reasoning_tokens: total?.reasoningTokens,
    }).toEqual(bill.total);
    let billedMicros = 0;
    for (const p of Object.values(PRICES)) {
      const line = bill.models[p.upstream]!;
      const uncached = line.input_tokens - line.cached_input_tokens - line.cache_write_input_tokens;
      billedMicros += uncached * p.input + line.cached_input_tokens * p.cached + line.cache_write_input_tokens * p.write + line.output_tokens * p.output;
    }
    expect(total?.costMicros).toBe(billedMicros);
  });

  it('GetUsage by user and by prompt version matches the requests sent', async () => {
    const byUser = await usage({ groupBy: [UsageGroupBy.USAGE_GROUP_BY_USER] });
    expect(byUser.rows.map((r) => [r.user, countersOf(r)])).toEqual(groupedBy((s) => s.user));
    const byVersion = await usage({ groupBy: [UsageGroupBy.USAGE_GROUP_BY_PROMPT_VERSION] });
    expect(byVersion.rows.map((r) => [r.promptVersion, countersOf(r)])).toEqual(groupedBy((s) => s.promptVersion));
    const both = await usage({ groupBy: [UsageGroupBy.USAGE_GROUP_BY_USER, UsageGroupBy.USAGE_GROUP_BY_PROMPT_VERSION] });
    expect(both.rows.map((r) => [JSON.stringify([r.user, r.promptVersion]), countersOf(r)])).toEqual(groupedBy((s) => JSON.stringify([s.user, s.promptVersion])));
    // Filters: one user's spend, one version's.
    expect(countersOf((await usage({ user: 'bob' })).total)).toEqual(sumOf(SENT.filter((s) => s.user === 'bob')));
    expect(countersOf((await usage({ promptVersion: 'triage-v2', user: 'ann' })).total)).toEqual(sumOf(SENT.filter((s) => s.promptVersion === 'triage-v2' && s.user === 'ann')));
  });

  it('groups by the allowlisted feature (never other metadata), by key and by provider', async () => {
    const byFeature = await usage({ groupBy: [UsageGroupBy.USAGE_GROUP_BY_FEATURE] });
    expect(byFeature.rows.map((r) => [r.feature, countersOf(r)])).toEqual(groupedBy((s) => s.feature));
    const byKey = await usage({ groupBy: [UsageGroupBy.USAGE_GROUP_BY_KEY] });
    expect(byKey.rows.map((r) => [r.keyId, countersOf(r)])).toEqual(groupedBy((s) => (s.key === APP ? 'k-app' : 'k-batch')));
    const byProvider = await usage({ groupBy: [UsageGroupBy.USAGE_GROUP_BY_PROVIDER] });
    expect(byProvider.rows.map((r) => [r.provider, countersOf(r)])).toEqual(groupedBy((s) => PRICES[s.route].provider));
  });

  it('top spenders: users by cost, dearest first, cut at the limit; an admin sees them for the tenant', async () => {
    const ranked = groupedBy((s) => s.user).sort((a, b) => b[1].costMicros - a[1].costMicros);
    const top = await usage({ tenantId: 'acme', groupBy: [UsageGroupBy.USAGE_GROUP_BY_USER], orderBy: UsageOrderBy.USAGE_ORDER_BY_COST_DESC, limit: 2 }, ADMIN);
    expect(top.rows.map((r) => [r.user, r.costMicros])).toEqual(ranked.slice(0, 2).map(([user, e]) => [user, e.costMicros]));
    expect(top.rowsOmitted).toBe(ranked.length - 2);
    expect(top.total?.costMicros).toBe(sumOf(SENT).costMicros);
  });
});
