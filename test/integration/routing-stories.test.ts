import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttemptOutcome, FinishReason, LatencyClass, QualityTier, ResponseFormatType, type Attempt } from '@llmgw/proto/v1';
import { type ServiceName } from '@llmgw/runtime';
import { chat, chatStream, eventually, getUsage, startTestMesh, userChat, type TestMesh } from '../src/harness.js';

/*
 * The failure stories of the design notes, each through the whole mesh against the simulator:
 * what routing must do when the stakes are high, the JSON shape would change, the model refuses,
 * a person is waiting, a loop runs at night, or the primary is slow. Every story's money is then
 * checked against the simulator's own bill.
 */

const FIXTURE = fileURLToPath(new URL('../fixtures/routing-stories.test.yaml', import.meta.url));
const KEYS = {
  stories: 'sk-stories-000000000000000000',
  night: 'sk-night-owl-0000000000000000',
  racer: 'sk-racer-00000000000000000000',
  admin: 'sk-stories-admin-000000000000',
};
/** Gateway model → its upstream name (the simulator's bill line) and micro-dollars per token. */
const MODELS: Record<string, { upstream: string; input: number; output: number }> = {
  economy: { upstream: 'economy-model', input: 1, output: 2 },
  strong: { upstream: 'strong-model', input: 10, output: 40 },
  'shape-breaker': { upstream: 'breaker-model-badjson', input: 1, output: 2 },
  'no-schema': { upstream: 'noschema-model', input: 1, output: 2 },
  'shape-keeper': { upstream: 'keeper-model', input: 3, output: 6 },
  down: { upstream: 'down-model-fail-503', input: 1, output: 2 },
  throttled: { upstream: 'throttled-model-fail-429', input: 1, output: 2 },
  backup: { upstream: 'backup-model', input: 2, output: 4 },
  slowpoke: { upstream: 'slowpoke-model-slow-1500', input: 1, output: 2 },
  'racer-backup': { upstream: 'racer-backup-model', input: 2, output: 4 },
};
/** The models only the racer tenant uses: the stories whose primary is abandoned. */
const RACER_MODELS = ['slowpoke', 'racer-backup'];
const NIGHT_CEILING_MICROS = 2_000; // tenants.night-owl.route_limits.night.usd_per_day

const PERSON = { schema: JSON.stringify({ type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'], additionalProperties: false }) };

let mesh: TestMesh;
beforeAll(async () => {
  mesh = await startTestMesh(FIXTURE, {}, { metrics: true });
}, 60_000);

const metric = (service: ServiceName, name: string, labels: Record<string, string> = {}) => mesh.metric(service, name, labels);
afterAll(async () => {
  await mesh?.stop();
});

/** Requests each upstream model received during `fn`. */
async function callsDuring<T>(fn: () => Promise<T>): Promise<{ result: T; calls: Record<string, number> }> {
  const before = mesh.simulator.stats().byModel;
  const result = await fn();
  const after = mesh.simulator.stats().byModel;
  const calls: Record<string, number> = {};
  for (const [name, spec] of Object.entries(MODELS)) {
    const n = (after[spec.upstream] ?? 0) - (before[spec.upstream] ?? 0);
    if (n > 0) calls[name] = n;
  }
  return { result, calls };
}

const outcomes = (attempts: Attempt[] | undefined) => (attempts ?? []).map((a) => `${a.model}:${AttemptOutcome[a.outcome]}${a.reason ? `:${a.reason}` : ''}`);

function personRequest(content: string, route: string) {
  return userChat(content, { route, responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, jsonSchema: PERSON.schema, schemaName: 'person' } });
}

describe('routing stories through the mesh', () => {
  it('sends a high-stakes request to the strong model by quality tier, and everyday traffic to the economy model', async () => {
    const { result: premium, calls } = await callsDuring(() => chat(mesh.gateway, KEYS.stories, userChat('approve this wire transfer?', { route: 'stakes', qualityTier: QualityTier.QUALITY_TIER_PREMIUM })));
    if (!premium.ok) throw premium.error;
    expect(premium.value.routing).toMatchObject({ rule: 'high-stakes', chosenModel: 'strong' });
    expect(calls).toEqual({ strong: 1 });

    const everyday = await chat(mesh.gateway, KEYS.stories, userChat('what are your opening hours?', { route: 'stakes' }));
    if (!everyday.ok) throw everyday.error;
    expect(everyday.value.routing).toMatchObject({ rule: 'default', chosenModel: 'economy' });
  });

  it('repairs a wrong JSON shape with the same model when one more try fixes it', async () => {
    // The fallback cannot honour a json_schema, so the router leaves it out. The marker makes the first answer the wrong shape; the repair turn comes after it, so the model then complies.
    const { result: res, calls } = await callsDuring(() => chat(mesh.gateway, KEYS.stories, personRequest('describe the customer [[badjson]]', 'refusal')));
    if (!res.ok) throw res.error;
    expect(outcomes(res.value.routing?.attempts)).toEqual(['backup:ATTEMPT_OUTCOME_SKIPPED:missing_capability', 'economy:ATTEMPT_OUTCOME_FAILED:schema_failure', 'economy:ATTEMPT_OUTCOME_SUCCESS']);
    expect(calls).toEqual({ economy: 2 });
    const person = JSON.parse(res.value.message?.content ?? '') as Record<string, unknown>;
    expect(Object.keys(person).sort()).toEqual(['age', 'name']);
  });

  it('never returns a changed JSON shape: a model that keeps breaking it is repaired once, then the next model that can honour the schema answers', async () => {
    const { result: res, calls } = await callsDuring(() => chat(mesh.gateway, KEYS.stories, personRequest('describe the customer', 'shape-repair')));
    if (!res.ok) throw res.error;
    expect(outcomes(res.value.routing?.attempts)).toEqual([
      'no-schema:ATTEMPT_OUTCOME_SKIPPED:missing_capability',
      'shape-breaker:ATTEMPT_OUTCOME_FAILED:schema_failure',
      'shape-breaker:ATTEMPT_OUTCOME_FAILED:schema_failure',
      'shape-keeper:ATTEMPT_OUTCOME_SUCCESS',
    ]);
    expect(res.value.routing).toMatchObject({ chosenModel: 'shape-keeper', fallbackUsed: true });
    expect(calls).toEqual({ 'shape-breaker': 2, 'shape-keeper': 1 }); // the model without json_schema is never asked
    expect(Object.keys(JSON.parse(res.value.message?.content ?? '') as object).sort()).toEqual(['age', 'name']);
  });

  it('fails closed with UNAVAILABLE naming the mismatch when the route says fail and schema_failure is not a trigger', async () => {
    const { result: res, calls } = await callsDuring(() => chat(mesh.gateway, KEYS.stories, personRequest('describe the customer', 'shape-strict')));
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.error.code).toBe(status.UNAVAILABLE);
    expect(res.error.details).toMatch(/schema/i);
    expect(calls).toEqual({ 'shape-breaker': 1 });
  });

  it('returns a safety refusal as it is, without rerouting it to the fallback', async () => {
    const { result: res, calls } = await callsDuring(() => chat(mesh.gateway, KEYS.stories, userChat('[[refuse]] tell me how to pick a lock', { route: 'refusal' })));
    if (!res.ok) throw res.error;
    expect(res.value.finishReason).toBe(FinishReason.FINISH_REASON_CONTENT_FILTER);
    expect(res.value.routing).toMatchObject({ chosenModel: 'economy', fallbackUsed: false });
    expect(calls).toEqual({ economy: 1 });
  });

  it('never retries while a person waits: an interactive request falls back at once, a batch request retries first', async () => {
    const interactive = await callsDuring(() => chat(mesh.gateway, KEYS.stories, userChat('hello', { route: 'sla', latencyClass: LatencyClass.LATENCY_CLASS_INTERACTIVE })));
    if (!interactive.result.ok) throw interactive.result.error;
    expect(interactive.calls).toEqual({ down: 1, backup: 1 });
    expect(outcomes(interactive.result.value.routing?.attempts)).toEqual(['down:ATTEMPT_OUTCOME_FAILED:http_5xx', 'backup:ATTEMPT_OUTCOME_SUCCESS']);

    const batch = await callsDuring(() => chat(mesh.gateway, KEYS.stories, userChat('hello', { route: 'sla', latencyClass: LatencyClass.LATENCY_CLASS_BATCH })));
    if (!batch.result.ok) throw batch.result.error;
    expect(batch.calls).toEqual({ down: 3, backup: 1 }); // batch_retries: 2
  });

  it('a batch retry honours the provider\'s retry-after', async () => {
    const started = Date.now();
    const batch = await callsDuring(() => chat(mesh.gateway, KEYS.stories, userChat('hello', { route: 'sla-throttled', latencyClass: LatencyClass.LATENCY_CLASS_BATCH })));
    if (!batch.result.ok) throw batch.result.error;
    expect(batch.calls).toEqual({ throttled: 2, backup: 1 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000); // the simulator's 429 says retry-after: 1, the route's backoff 20 ms
  });

  it('an interactive request over its attempt timeout moves to the fallback once, without waiting out the slow primary', async () => {
    const started = Date.now();
    const res = await callsDuring(() => chat(mesh.gateway, KEYS.racer, userChat('hello', { route: 'sla-timeout', latencyClass: LatencyClass.LATENCY_CLASS_INTERACTIVE })));
    if (!res.result.ok) throw res.result.error;
    expect(outcomes(res.result.value.routing?.attempts)).toEqual(['slowpoke:ATTEMPT_OUTCOME_FAILED:timeout', 'racer-backup:ATTEMPT_OUTCOME_SUCCESS']);
    expect(res.calls).toEqual({ slowpoke: 1, 'racer-backup': 1 });
    expect(Date.now() - started).toBeLessThan(1_500); // the primary alone takes 1,500 ms
  });

  it('stops at an attempt whose failure is not a listed trigger', async () => {
    const { result: res, calls } = await callsDuring(() => chat(mesh.gateway, KEYS.stories, userChat('hello', { route: 'unlisted' })));
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.error.code).toBe(status.UNAVAILABLE);
    expect(calls).toEqual({ down: 1 }); // fallback_on lists only http_429; a 503 stops here
  });

  it('a tight loop at night hits the per-route hard ceiling and stops spending, while the tenant\'s other routes stay open', async () => {
    let answered = 0;
    let refused: Awaited<ReturnType<typeof chat>> | undefined;
    for (let i = 0; i < 500 && !refused; i++) {
      const res = await chat(mesh.gateway, KEYS.night, userChat(`retry the nightly sync, attempt ${i}`, { route: 'night' }));
      if (res.ok) answered++;
      else refused = res;
    }
    expect(answered).toBeGreaterThan(5);
    if (!refused || refused.ok) throw new Error('the loop was never stopped');
    expect(refused.error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused.error.details).toMatch(/night/);
    expect(Number(refused.error.metadata.get('retry-after-ms')[0])).toBeGreaterThan(0);
    // Still refused: the ceiling holds for the day, not for one request.
    const again = await chat(mesh.gateway, KEYS.night, userChat('one more', { route: 'night' }));
    expect(again.ok ? status.OK : again.error.code).toBe(status.RESOURCE_EXHAUSTED);

    const other = await chat(mesh.gateway, KEYS.night, userChat('a daytime question', { route: 'stakes' }));
    if (!other.ok) throw other.error;

    // Spent on the route: at most the ceiling plus the one reservation admitted last.
    const oneReservation = 200 * MODELS.economy!.input + 16 * MODELS.economy!.output;
    const night = await eventually(
      () => getUsage(mesh.usage, KEYS.night, { route: 'night' }),
      (r) => r.ok && Number(r.value.total?.requests) === answered,
      15_000,
    );
    if (!night.ok) throw night.error;
    expect(Number(night.value.total?.costMicros)).toBeLessThanOrEqual(NIGHT_CEILING_MICROS + oneReservation);
    expect(Number(night.value.total?.costMicros)).toBeGreaterThan(NIGHT_CEILING_MICROS - oneReservation);
  }, 60_000);

  it('cures a slow primary by hedging: the second call answers, the first is cancelled, both are recorded and billed', async () => {
    const started = Date.now();
    const { result: res, calls } = await callsDuring(() => chat(mesh.gateway, KEYS.racer, userChat('hello', { route: 'hedged' })));
    if (!res.ok) throw res.error;
    expect(Date.now() - started).toBeLessThan(1_500); // the primary alone takes 1,500 ms; the hedge starts after 100
    expect(res.value.routing).toMatchObject({ chosenModel: 'racer-backup' });
    const attempts = res.value.routing?.attempts ?? [];
    expect(attempts.map((a) => [a.model, AttemptOutcome[a.outcome], a.reason, a.hedge])).toEqual([
      ['slowpoke', 'ATTEMPT_OUTCOME_FAILED', 'hedge_lost', false],
      ['racer-backup', 'ATTEMPT_OUTCOME_SUCCESS', '', true],
    ]);
    expect(calls).toEqual({ slowpoke: 1, 'racer-backup': 1 });
  });

  it('hedges a stream the same way: the second call streams the answer, the first is cancelled before its first token', async () => {
    const started = Date.now();
    const { result, calls } = await callsDuring(() => chatStream(mesh.gateway, KEYS.racer, userChat('hello', { route: 'hedged' })));
    if (result.error) throw result.error;
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(result.chunks.map((c) => c.contentDelta).join('')).not.toBe('');
    const last = result.chunks.at(-1);
    expect(last?.routing?.chosenModel).toBe('racer-backup');
    expect(outcomes(last?.routing?.attempts)).toEqual(['slowpoke:ATTEMPT_OUTCOME_FAILED:hedge_lost', 'racer-backup:ATTEMPT_OUTCOME_SUCCESS']);
    expect(calls).toEqual({ slowpoke: 1, 'racer-backup': 1 });
  });

  it('the accountant equals the simulator\'s bill exactly; abandoned calls are billed their prompt, never more than the provider charged', async () => {
    // The slow primary's three abandoned calls (timed out, lost to a hedge unary and streamed) are billed by the simulator when their 1.5 s end.
    await eventually(async () => (await mesh.simulator.bill()).models[MODELS.slowpoke!.upstream]?.requests ?? 0, (n) => n === 3, 5_000);
    const billed = await mesh.simulator.bill();
    const priced = (names: string[]) =>
      names.reduce((sum, name) => {
        const spec = MODELS[name]!;
        const line = billed.models[spec.upstream];
        return sum + (line ? line.input_tokens * spec.input + line.output_tokens * spec.output : 0);
      }, 0);
    const exact = priced(Object.keys(MODELS).filter((m) => !RACER_MODELS.includes(m)));
    const totalOf = async (key: string) => {
      const r = await getUsage(mesh.usage, key, {});
      if (!r.ok) throw r.error;
      return Number(r.value.total?.costMicros);
    };
    const both = await eventually(async () => (await totalOf(KEYS.stories)) + (await totalOf(KEYS.night)), (sum) => sum === exact, 15_000);
    expect(both).toBe(exact);

    // The provider billed the abandoned calls in full; the gateway, which stopped waiting, can
    // only know their prompts: it bills those, at least, and never more than the provider did.
    const racer = await totalOf(KEYS.racer);
    expect(racer).toBeGreaterThan(priced(['racer-backup']));
    expect(racer).toBeLessThanOrEqual(priced(RACER_MODELS));
  }, 30_000);

  it('the executor\'s metrics equal the traffic above: chosen models, fallbacks by reason, GenAI durations, tokens and cost by tenant', async () => {
    const exec = (name: string, labels?: Record<string, string>) => metric('provider-executor', name, labels);
    expect(await exec('llmgw_routed_requests_total', { route: 'stakes', model: 'strong', fallback: 'false' })).toBe(1);
    // sla: the interactive and the batch request each moved once from down to backup (the batch retries are not moves).
    expect(await exec('llmgw_fallbacks_total', { route: 'sla', reason: 'http_5xx' })).toBe(2);
    expect(await exec('llmgw_fallbacks_total', { route: 'sla-timeout', reason: 'timeout' })).toBe(1);
    expect(await exec('llmgw_fallbacks_total', { route: 'hedged' })).toBe(0); // a lost hedge is no fallback
    expect(await exec('llmgw_fallbacks_total', { route: 'unlisted' })).toBe(0);
    // down was called once (sla, interactive), three times (sla, batch) and once (unlisted).
    expect(await exec('gen_ai_client_operation_duration_seconds_count', { gen_ai_request_model: 'down', error_type: 'http_5xx' })).toBe(5);
    expect(await exec('gen_ai_client_operation_time_to_first_chunk_seconds_count', { gen_ai_request_model: 'racer-backup' })).toBe(1);
    expect(await exec('gen_ai_client_token_usage_count', { gen_ai_request_model: 'strong', gen_ai_token_type: 'output' })).toBe(1);

    for (const [tenant, key] of [['stories', KEYS.stories], ['night-owl', KEYS.night], ['racer', KEYS.racer]] as const) {
      const usage = await getUsage(mesh.usage, key, {});
      if (!usage.ok) throw usage.error;
      expect({ tenant, cost: await exec('llmgw_cost_micros_total', { tenant }) }).toEqual({ tenant, cost: Number(usage.value.total?.costMicros) });
      const tokens = (await exec('llmgw_tokens_total', { tenant, type: 'input' })) + (await exec('llmgw_tokens_total', { tenant, type: 'output' }));
      expect({ tenant, tokens }).toEqual({ tenant, tokens: Number(usage.value.total?.inputTokens) + Number(usage.value.total?.outputTokens) });
    }
  });
});
