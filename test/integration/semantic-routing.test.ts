import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { UsageGroupBy, type ChatResponse } from '@llmgw/proto/v1';
import { chat, chatStream, eventually, getUsage, startTestMesh, userChat, type TestMesh } from '../src/harness.js';

/*
 * Semantic routing through the mesh: the edge embeds each request's text through the gateway's
 * own embedding route (billed, like any request), gives it the intent of its nearest exemplar,
 * and the router's rule for that intent picks the model.
 */
const FIXTURE = fileURLToPath(new URL('../fixtures/semantic-routing.test.yaml', import.meta.url));
const LABELLED: Record<string, string[]> = parse(readFileSync(new URL('../fixtures/intents.labelled.yaml', import.meta.url), 'utf8'));
const KEYS = { acme: 'sk-semantic-acme-000000000000', admin: 'sk-semantic-admin-00000000000' };
/** The model each intent's rule sends to. */
const DESK: Record<string, string> = { billing: 'billing-desk', account_security: 'security-desk', technical: 'tech-desk', sales: 'sales-desk', '': 'general' };
/** Gateway model → its upstream name (the simulator's bill line) and micro-dollars per token. */
const MODELS: Record<string, { upstream: string; input: number; output: number }> = {
  general: { upstream: 'general-model', input: 1, output: 2 },
  'billing-desk': { upstream: 'billing-model', input: 2, output: 4 },
  'security-desk': { upstream: 'security-model', input: 5, output: 10 },
  'tech-desk': { upstream: 'tech-model', input: 3, output: 6 },
  'sales-desk': { upstream: 'sales-model', input: 1, output: 1 },
  embedder: { upstream: 'text-embedding-3-small', input: 1, output: 0 },
};
const THRESHOLD = 0.3; // intents.support.threshold
/** The requests of this suite beyond the labelled set. */
const OTHER_TEXTS = ['Good morning, lovely weather today', 'phishing?', 'Please refund the duplicate charge on my invoice'];

let mesh: TestMesh;
beforeAll(async () => {
  mesh = await startTestMesh(FIXTURE, {}, { metrics: true });
}, 60_000);
afterAll(async () => {
  await mesh?.stop();
});

/** Requests of route support by the intent their answer's routing record names. */
const seen: Record<string, number> = {};
const tally = (intent: string) => (seen[intent] = (seen[intent] ?? 0) + 1);

async function ask(text: string): Promise<ChatResponse> {
  const r = await chat(mesh.gateway, KEYS.acme, userChat(text, { route: 'support' }));
  if (!r.ok) throw r.error;
  tally(r.value.routing!.intent);
  return r.value;
}

/** Runs `fn` over `items`, `width` at a time, keeping their order. */
async function inBatches<T, R>(items: T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  return out;
}

describe('semantic routing', () => {
  const labelled = Object.entries(LABELLED).flatMap(([intent, texts]) => texts.map((text) => ({ intent, text })));

  it('gives a labelled set of at least 40 requests the right intent (accuracy reported) and routes each by its intent', async () => {
    expect(labelled.length).toBeGreaterThanOrEqual(40);
    const answers = await inBatches(labelled, 8, (l) => ask(l.text));
    const byIntent = new Map<string, { right: number; total: number }>();
    answers.forEach((res, i) => {
      const expected = labelled[i]!.intent;
      const routing = res.routing!;
      // Whatever the verdict, the rule of that intent picked the model, and the score is on record.
      expect(res.model).toBe(DESK[routing.intent]);
      if (routing.intent) expect(routing.intentScore).toBeGreaterThan(0);
      const row = byIntent.get(expected) ?? { right: 0, total: 0 };
      row.total++;
      if (routing.intent === expected) row.right++;
      byIntent.set(expected, row);
    });
    const right = [...byIntent.values()].reduce((n, r) => n + r.right, 0);
    const accuracy = right / labelled.length;
    console.log(
      ['intent            right/total', ...[...byIntent].map(([intent, r]) => `${intent.padEnd(18)}${r.right}/${r.total}`), `accuracy          ${right}/${labelled.length} = ${(accuracy * 100).toFixed(1)}%`].join('\n'),
    );
    expect(accuracy).toBeGreaterThanOrEqual(0.9);
  }, 60_000);

  it('leaves a request that matches no intent to the general rule, with its low score on record', async () => {
    const res = await ask(OTHER_TEXTS[0]!);
    expect(res.routing).toMatchObject({ intent: '', rule: 'general' });
    expect(res.model).toBe('general');
    expect(res.routing!.intentScore).toBeLessThan(THRESHOLD);
  });

  it('lets a keyword decide when no exemplar is near enough', async () => {
    // "phishing" is a keyword of account_security and in none of its examples.
    const res = await ask(OTHER_TEXTS[1]!);
    expect(res.routing).toMatchObject({ intent: 'account_security', intentScore: 1, rule: 'security' });
  });

  it('classifies a stream too: the intent and its score are on the last message\'s routing', async () => {
    const r = await chatStream(mesh.gateway, KEYS.acme, userChat(OTHER_TEXTS[2]!, { route: 'support' }));
    if (r.error) throw r.error;
    const routing = r.chunks.at(-1)?.routing;
    tally(routing?.intent ?? '?');
    expect(routing).toMatchObject({ intent: 'billing', chosenModel: 'billing-desk' });
    expect(routing!.intentScore).toBeGreaterThanOrEqual(THRESHOLD);
  });

  it('counts every classified request by intent and how it was decided, and the low-confidence ones', async () => {
    const classified = labelled.length + OTHER_TEXTS.length;
    expect(await mesh.metric('edge', 'llmgw_intents_total')).toBe(classified);
    expect(await mesh.metric('edge', 'llmgw_intents_total', { intent: 'none', source: 'none' })).toBeGreaterThanOrEqual(1);
    expect(await mesh.metric('edge', 'llmgw_intents_total', { intent: 'account_security', source: 'keyword' })).toBeGreaterThanOrEqual(1);
    const low = await mesh.metric('edge', 'llmgw_intent_low_confidence_total', { route: 'support' });
    expect(low).toBe(classified - (await mesh.metric('edge', 'llmgw_intents_total', { source: 'embedding' })));
  });

  it('bills every embedding: the tenant its texts, the classifier\'s tenant the exemplars (once); the accountant equals the simulator\'s bill exactly', async () => {
    const texts = new Set([...labelled.map((l) => l.text), ...OTHER_TEXTS]);
    // One batch of exemplars, then one call per distinct request text (a repeated text is cached).
    const billed = await eventually(async () => mesh.simulator.bill(), (b) => b.models['text-embedding-3-small']?.requests === 1 + texts.size);
    expect(billed.models['text-embedding-3-small']?.requests).toBe(1 + texts.size);
    const exact = Object.values(MODELS).reduce((sum, m) => {
      const line = billed.models[m.upstream];
      return sum + (line ? line.input_tokens * m.input + line.output_tokens * m.output : 0);
    }, 0);
    const totals = async () => {
      const r = await getUsage(mesh.usage, KEYS.admin, { groupBy: [UsageGroupBy.USAGE_GROUP_BY_TENANT, UsageGroupBy.USAGE_GROUP_BY_ROUTE] });
      if (!r.ok) throw r.error;
      return r.value;
    };
    const usage = await eventually(totals, (u) => Number(u.total?.costMicros) === exact, 15_000);
    expect(Number(usage.total?.costMicros)).toBe(exact);
    const row = (tenant: string, route: string) => usage.rows.find((r) => r.tenantId === tenant && r.route === route);
    expect(Number(row('platform', 'embeddings')?.requests)).toBe(1);
    expect(Number(row('platform', 'embeddings')?.costMicros)).toBeGreaterThan(0);
    expect(Number(row('acme', 'embeddings')?.requests)).toBe(texts.size);
    expect(Number(row('acme', 'support')?.requests)).toBe(labelled.length + OTHER_TEXTS.length);

    // Cost by intent: GetUsage groups the route's requests as their routing records named them.
    const byIntent = await getUsage(mesh.usage, KEYS.acme, { route: 'support', groupBy: [UsageGroupBy.USAGE_GROUP_BY_INTENT] });
    if (!byIntent.ok) throw byIntent.error;
    expect(Object.fromEntries(byIntent.value.rows.map((r) => [r.intent, Number(r.requests)]))).toEqual(seen);
  }, 30_000);
});
