import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttemptOutcome, type ChatResponse } from '@llmgw/proto/v1';
import { chat, startTestMesh, userChat, type TestMesh } from '../src/harness.js';

/*
 * Routing by measured health through the real mesh: the executor broadcasts its calls per model
 * every EXECUTOR_STATS_INTERVAL_MS over core NATS, the router aggregates them and moves a model
 * over its route's `demote` thresholds behind the healthy ones, before any breaker opens (the
 * executor's breaker opens after 5 consecutive failures; these routes see 3).
 */

const KEY = 'sk-health-routing-0000000000';
const STATS_INTERVAL_MS = 100;
const PLAN_CACHE_MS = 100;
const CALLS = 3;

const CONFIG = `
default_route: failing-first
providers:
  sim-openai: { kind: openai, base_url: "\${SIMULATOR_URL}/v1", api_key: sim-key, timeout_ms: 5000 }
models:
  small-fast: { provider: sim-openai, upstream_model: gpt-4o-mini, pricing: { input_per_million_usd: 0.15, output_per_million_usd: 0.6 }, tokenizer: openai }
  failing: { provider: sim-openai, upstream_model: gpt-4o-mini-fail-503, pricing: { input_per_million_usd: 0.15, output_per_million_usd: 0.6 }, tokenizer: openai }
  slow: { provider: sim-openai, upstream_model: gpt-4o-mini-slow-500, pricing: { input_per_million_usd: 0.15, output_per_million_usd: 0.6 }, tokenizer: openai }
routes:
  failing-first:
    demote: { error_rate_above: 0.5, min_calls: ${CALLS} }
    rules: [{ name: default, model: failing, fallback: [small-fast] }]
  slow-first:
    demote: { p95_ms_above: 400, min_calls: ${CALLS} }
    rules: [{ name: default, model: slow, fallback: [small-fast] }]
  no-demotion:
    rules: [{ name: default, model: slow, fallback: [small-fast] }]
tiers:
  open: {}
tenants:
  acme: { tier: open }
api_keys:
  - { id: k-acme, tenant: acme, key: ${KEY} }
`;

let mesh: TestMesh;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'llmgw-health-routing-'));
  const configPath = join(dir, 'gateway.yaml');
  writeFileSync(configPath, CONFIG);
  mesh = await startTestMesh(configPath, { EXECUTOR_STATS_INTERVAL_MS: String(STATS_INTERVAL_MS), EDGE_PLAN_CACHE_MS: String(PLAN_CACHE_MS) });
}, 60_000);
afterAll(async () => {
  await mesh?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function ask(route: string): Promise<ChatResponse> {
  const res = await chat(mesh.gateway, KEY, userChat('hello there', { route }));
  if (!res.ok) throw new Error(`chat on ${route} failed: ${res.error.message}`);
  return res.value;
}

const attemptsOf = (r: ChatResponse) => (r.routing?.attempts ?? []).map((a) => [a.model, a.outcome, a.reason]);

/** Long enough for a report to be broadcast and received, and for the edge's cached plan to expire. */
const settle = () => new Promise((r) => setTimeout(r, 4 * STATS_INTERVAL_MS + 2 * PLAN_CACHE_MS));

describe('routing by measured health', () => {
  it('tries a primary whose error rate is over the route\'s threshold after the healthy model, before its breaker opens', async () => {
    for (let i = 0; i < CALLS; i++) {
      const r = await ask('failing-first');
      expect(attemptsOf(r)).toEqual([
        ['failing', AttemptOutcome.ATTEMPT_OUTCOME_FAILED, 'http_5xx'],
        ['small-fast', AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, ''],
      ]);
    }
    await settle();
    const r = await ask('failing-first');
    // The healthy model answers first; the demoted primary is not skipped (no "unhealthy"
    // record: its breaker is still closed), only left for last, so it is never called here.
    expect(r.routing?.chosenModel).toBe('small-fast');
    expect(attemptsOf(r)).toEqual([['small-fast', AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, '']]);
    expect(r.routing?.fallbackUsed).toBe(false);
  });

  it('does the same for a slow primary by its p95, and leaves a route without demote alone', async () => {
    for (let i = 0; i < CALLS; i++) expect((await ask('slow-first')).routing?.chosenModel).toBe('slow');
    await settle();
    const r = await ask('slow-first');
    expect(attemptsOf(r)).toEqual([['small-fast', AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, '']]);
    // The same measurements, but this route has no thresholds: the slow model stays first.
    // (The threshold leaves room for small-fast's first call on a cold connection, some 200 ms
    // here: were it demoted as well, every model would be and the plan would keep its order.)
    expect((await ask('no-demotion')).routing?.chosenModel).toBe('slow');
  });
});
