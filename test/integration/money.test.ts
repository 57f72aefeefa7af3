import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimulatorBill } from '@llmgw/provider-simulator';
import { chat, eventually, getUsage, startTestMesh, userChat, type TestMesh } from '../src/harness.js';

/*
 * Money is recorded where it is spent: the executor bills every attempt and publishes the usage
 * event, quota reserves what the plan may spend, and each service reloads its own part of the
 * config. Everything is checked against the provider simulator's own bill, over HTTP.
 */

const FIXTURE = fileURLToPath(new URL('../fixtures/money.test.yaml', import.meta.url));
const KEYS = {
  budget: 'sk-money-budget-000000000000',
  load: 'sk-money-load-00000000000000',
  reload: 'sk-money-reload-000000000000',
  admin: 'sk-money-admin-0000000000000',
};
const BUDGET_MICROS = 50_000; // tiers.budget.limits.usd_per_day
const DEAR = { input: 100, output: 200 }; // micro-dollars per token of the dear fallback

let mesh: TestMesh;
let configPath: string;

beforeAll(async () => {
  configPath = join(mkdtempSync(join(tmpdir(), 'llmgw-money-')), 'gateway.yaml');
  copyFileSync(FIXTURE, configPath);
  mesh = await startTestMesh(configPath, { POLICY_POLL_MS: '100', EDGE_PLAN_CACHE_MS: '200' });
}, 60_000);
afterAll(async () => {
  await mesh?.stop();
});

async function bill(): Promise<SimulatorBill> {
  const res = await fetch(`${mesh.simulator.url}/_simulator/bill`);
  return (await res.json()) as SimulatorBill;
}

describe('dollar budget with a failing cheap primary and a 100x dearer fallback', () => {
  it('never spends more than the budget plus one reservation, and the accountant equals the provider bill', async () => {
    // Digits run denser than the 4-characters-a-token estimate: the simulator counts more input
    // tokens than chars/4, so an estimate of that kind would under-reserve.
    const prompt = '7305 9921 4478 0062 1193 8857 3310 4426';
    const maxTokens = 32;
    const outcomes: number[] = [];
    for (let wave = 0; wave < 3; wave++) {
      const results = await Promise.all(
        Array.from({ length: 300 }, () => chat(mesh.gateway, KEYS.budget, userChat(prompt, { route: 'budget', maxTokens }))),
      );
      for (const r of results) outcomes.push(r.ok ? status.OK : r.error.code);
      // Reconciliation runs over NATS; give it a moment between waves, as real traffic would.
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(outcomes.filter((c) => c === status.OK).length).toBeGreaterThan(0);
    expect(outcomes.filter((c) => c === status.RESOURCE_EXHAUSTED).length).toBeGreaterThan(0);
    expect(outcomes.every((c) => c === status.OK || c === status.RESOURCE_EXHAUSTED)).toBe(true);

    const billed = await bill();
    const dear = billed.models['dear-fallback'];
    if (!dear) throw new Error('the fallback was never billed');
    expect(billed.models['cheap-fail-503']).toBeUndefined(); // errors are not billed
    expect(dear.input_tokens / dear.requests).toBeGreaterThan(4 + 4 + Math.ceil(prompt.length / 4) - 1);
    const spent = dear.input_tokens * DEAR.input + dear.output_tokens * DEAR.output;
    // One reservation: the prompt's UTF-8 bytes plus framing, and all the output it may produce, at the dear price.
    const oneReservation = (3 + 4 + Buffer.byteLength(prompt)) * DEAR.input + maxTokens * DEAR.output;
    expect(spent).toBeLessThanOrEqual(BUDGET_MICROS + oneReservation);

    const usage = await eventually(
      () => getUsage(mesh.usage, KEYS.budget, {}),
      (r) => r.ok && r.value.total?.costMicros === spent,
      15_000,
    );
    if (!usage.ok) throw usage.error;
    expect(usage.value.total).toMatchObject({ costMicros: spent, inputTokens: dear.input_tokens, outputTokens: dear.output_tokens });
  }, 60_000);
});

describe('each service reloads its own part of the config', () => {
  it('plans a route and a model added to the file without a restart, refuses them once removed, and applies a lowered limit', async () => {
    const original = readFileSync(configPath, 'utf8');
    const withRoute = original
      .replace('routes:\n', 'routes:\n  reloaded:\n    rules: [{ name: only, model: reloaded-model }]\n')
      .replace('models:\n', 'models:\n  reloaded-model:\n    provider: sim\n    upstream_model: reloaded-upstream\n    pricing: { input_per_million_usd: 1, output_per_million_usd: 2 }\n');
    writeFileSync(configPath, withRoute);
    const answered = await eventually(
      () => chat(mesh.gateway, KEYS.reload, userChat('hello again', { route: 'reloaded' })),
      (r) => r.ok,
      10_000,
    );
    if (!answered.ok) throw answered.error;
    expect(answered.value.model).toBe('reloaded-model');
    expect((await bill()).models['reloaded-upstream']?.requests).toBeGreaterThanOrEqual(1);

    writeFileSync(configPath, original.replace('reload-co: { tier: unlimited }', 'reload-co: { tier: unlimited, limits: { requests_per_minute: 1 } }'));
    const refused = await eventually(
      () => chat(mesh.gateway, KEYS.reload, userChat('hello', { route: 'reloaded' })),
      (r) => !r.ok && r.error.code === status.INVALID_ARGUMENT,
      10_000,
    );
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.error.details).toMatch(/unknown route "reloaded"/);
    // The lowered limit: at most one request a minute now (the earlier ones count too).
    const limited = await eventually(
      () => chat(mesh.gateway, KEYS.reload, userChat('hello', { route: 'slow' })),
      (r) => !r.ok && r.error.code === status.RESOURCE_EXHAUSTED,
      10_000,
    );
    expect(limited.ok).toBe(false);
    if (!limited.ok) expect(limited.error.details).toMatch(/requests_per_minute/);
    writeFileSync(configPath, original);
  }, 40_000);
});
