import { routerSectionsSchema, type RuleConfig } from '@llmgw/config';
import { Operation, PlanRouteRequest } from '@llmgw/proto/router';
import { LatencyClass, Priority, QualityTier, TaskType } from '@llmgw/proto/v1';
import { Planner } from '@llmgw/router';
import { stickyBucket } from '@llmgw/sticky';
import { percentile, table } from './stats.js';

/**
 * `npm run bench -- router`: the router's decision alone, in process (no gRPC): `Planner.plan()`
 * over a route of 50 rules with every kind of condition, the matching rule late in the list and
 * weighted splits on some rules. Each call is timed on its own after a warm-up.
 */
const CALLS = Number(process.env.BENCH_ROUTER_CALLS ?? 200_000);
const WARM_UP = 20_000;
const RULES = 50;
const MODELS = ['m-small', 'm-backup', 'm-large', 'm-coder', 'm-json', 'm-long', 'm-canary', 'm-cheap'];

/** Rule i of 50: conditions that the benchmark's requests fail in turn, a split on every fifth. */
function rule(i: number): RuleConfig {
  const when: RuleConfig['when'][] = [
    { task_type: ['code'], quality_tier: ['premium'] },
    { tenant_tier: [`tier-${i}`] },
    { priority: ['low'], json: true },
    { latency_class: ['batch'], prompt_tokens: { min: 50_000 } },
    { json: true, prompt_tokens: { max: 10 + i } },
  ];
  return {
    name: `rule-${i}`,
    when: when[i % when.length]!,
    model: MODELS[i % MODELS.length]!,
    fallback: [MODELS[(i + 1) % MODELS.length]!, MODELS[(i + 2) % MODELS.length]!],
    split: i % 5 === 0 ? [{ model: 'm-canary', share: 0.1 }, { name: 'cheap-20', model: 'm-cheap', share: 0.2, fallback: ['m-small'] }] : [],
  };
}

function benchPlanner(): Planner {
  const rules = Array.from({ length: RULES - 4 }, (_, i) => rule(i));
  // The rules the benchmark's requests match: 47th (with a split), 48th, and the catch-all last.
  rules.push(
    { name: 'chat-high', when: { task_type: ['chat'], priority: ['high'], tenant_tier: ['pro'], prompt_tokens: { min: 100, max: 20_000 } }, model: 'm-large', fallback: ['m-small'], split: [{ name: 'canary-10', model: 'm-canary', share: 0.1 }, { model: 'm-cheap', share: 0.25 }] },
    { name: 'json-normal', when: { json: true, priority: ['normal'] }, model: 'm-json', fallback: ['m-small'], split: [] },
    { name: 'long', when: { prompt_tokens: { min: 100_000 } }, model: 'm-long', fallback: [], split: [] },
    { name: 'default', when: {}, model: 'm-small', fallback: ['m-backup'], split: [] },
  );
  const models = Object.fromEntries(
    MODELS.map((m) => [
      m,
      {
        provider: 'p',
        pricing: { input_per_million_usd: 1, output_per_million_usd: 2 },
        context_tokens: m === 'm-long' ? 1_000_000 : 128_000,
        max_output_tokens: 4_096,
        capabilities: ['tools', 'json_object', 'json_schema', 'streaming'],
        tokenizer: 'approx',
      },
    ]),
  );
  return new Planner(
    routerSectionsSchema.parse({
      default_route: 'bench',
      models,
      routes: { bench: { rules } },
      tiers: { pro: { allowed_models: [] } },
      tenants: { acme: {} },
    }),
  );
}

interface Case {
  name: string;
  /** The rule the case's requests must match, and the split arms they must spread over. */
  rule: string;
  arms: string[];
  requests: PlanRouteRequest[];
}

/** 1,024 requests a case cycles through, one per end user, so the split arms vary. */
function requestsOf(over: Partial<PlanRouteRequest>): PlanRouteRequest[] {
  return Array.from({ length: 1_024 }, (_, i) =>
    PlanRouteRequest.fromPartial({
      tenantId: 'acme',
      tier: 'pro',
      route: 'bench',
      operation: Operation.OPERATION_CHAT,
      taskType: TaskType.TASK_TYPE_CHAT,
      qualityTier: QualityTier.QUALITY_TIER_STANDARD,
      latencyClass: LatencyClass.LATENCY_CLASS_INTERACTIVE,
      requiredCapabilities: ['streaming'],
      promptTokens: 800,
      stickyBucket: stickyBucket(`user-${i}`),
      ...over,
    }),
  );
}

const CASES: Case[] = [
  { name: 'rule 47 of 50 matches, split 10% / 25% / rest', rule: 'chat-high', arms: ['', 'canary-10', 'm-cheap'], requests: requestsOf({ priority: Priority.PRIORITY_HIGH }) },
  { name: 'rule 48 of 50 matches (json)', rule: 'json-normal', arms: [''], requests: requestsOf({ requiredCapabilities: ['streaming', 'json_object'] }) },
  { name: 'catch-all rule 50 of 50', rule: 'default', arms: [''], requests: requestsOf({ taskType: TaskType.TASK_TYPE_SUMMARIZATION }) },
];

/** A bench that measured some other decision than it names would mislead: check first. */
function check(planner: Planner, c: Case): void {
  const plans = c.requests.map((r) => planner.plan(r));
  const rules = [...new Set(plans.map((p) => p.rule))];
  const arms = [...new Set(plans.map((p) => p.split))].sort();
  if (rules.join() !== c.rule || arms.join() !== c.arms.join()) {
    throw new Error(`bench misconfigured: "${c.name}" planned rules ${rules.join(', ')} and arms ${JSON.stringify(arms)}`);
  }
}

function measure(planner: Planner, requests: PlanRouteRequest[]): { micros: Float64Array; callsPerSecond: number } {
  const n = requests.length;
  for (let i = 0; i < WARM_UP; i++) planner.plan(requests[i % n]!);
  const micros = new Float64Array(CALLS);
  const started = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) {
    const t = process.hrtime.bigint();
    planner.plan(requests[i % n]!);
    micros[i] = Number(process.hrtime.bigint() - t) / 1_000;
  }
  const elapsedNs = Number(process.hrtime.bigint() - started);
  return { micros: micros.sort(), callsPerSecond: (CALLS / elapsedNs) * 1e9 };
}

const planner = benchPlanner();
const rows = CASES.map((c) => {
  check(planner, c);
  const { micros, callsPerSecond } = measure(planner, c.requests);
  const sorted = Array.from(micros);
  return [c.name, percentile(sorted, 50).toFixed(2), percentile(sorted, 95).toFixed(2), percentile(sorted, 99).toFixed(2), Math.round(callsPerSecond)];
});
process.stdout.write(`\n## Router decision: Planner.plan() in process, ${RULES} rules, ${CALLS.toLocaleString('en')} calls each\n\n`);
process.stdout.write(`${table(['request', 'p50 µs', 'p95 µs', 'p99 µs', 'calls/s'], rows)}\n`);
