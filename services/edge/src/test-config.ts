import { edgeSectionsSchema, parseSections, type EdgeSections } from '@llmgw/config';
import { FallbackTrigger, Plan, Tokenizer, type Guardrails, type PlannedAttempt } from '@llmgw/proto/router';
import { ResponseFormatType } from '@llmgw/proto/v1';
import { STICKY_BUCKETS } from '@llmgw/sticky';

/**
 * What the edge's unit tests run against. The edge reads no routes or models: it gets plans from
 * the router, so the tests build plans as the router returns them (every attempt with its pricing,
 * tokenizer and limits, the route's caps and guardrails, the prompt range the plan holds for),
 * plus the edge's own sections of the file (the tenants' prompt-log policy).
 */

/** Models as the router puts them into attempts. */
export const MODELS = {
  'small-fast': {
    provider: 'sim-openai',
    upstreamModel: 'gpt-4o-mini',
    pricing: { inputPerMillionUsd: 0.15, outputPerMillionUsd: 0.6, cachedInputPerMillionUsd: 0.075, cacheWriteInputPerMillionUsd: 0.15 },
    tokenizer: Tokenizer.TOKENIZER_OPENAI,
    contextTokens: 128_000,
    maxOutputTokens: 4_096,
  },
  claude: {
    provider: 'sim-anthropic',
    upstreamModel: 'claude-haiku-4-5',
    pricing: { inputPerMillionUsd: 1, outputPerMillionUsd: 5, cachedInputPerMillionUsd: 0.1, cacheWriteInputPerMillionUsd: 1.25 },
    tokenizer: Tokenizer.TOKENIZER_APPROX,
    contextTokens: 200_000,
    maxOutputTokens: 4_096,
  },
  /** 100× small-fast's price, same tokenizer: the expensive fallback of the budget-overshoot issue. */
  'pricey-fallback': {
    provider: 'sim-openai',
    upstreamModel: 'gpt-pricey',
    pricing: { inputPerMillionUsd: 15, outputPerMillionUsd: 60, cachedInputPerMillionUsd: 15, cacheWriteInputPerMillionUsd: 15 },
    tokenizer: Tokenizer.TOKENIZER_OPENAI,
    contextTokens: 128_000,
    maxOutputTokens: 4_096,
  },
  'embed-small': {
    provider: 'sim-openai',
    upstreamModel: 'text-embedding-3-small',
    pricing: { inputPerMillionUsd: 0.02, outputPerMillionUsd: 0, cachedInputPerMillionUsd: 0.02, cacheWriteInputPerMillionUsd: 0.02 },
    tokenizer: Tokenizer.TOKENIZER_OPENAI,
    contextTokens: 8_192,
    maxOutputTokens: 4_096,
  },
  'embed-approx': {
    provider: 'sim-anthropic',
    upstreamModel: 'embed-approx',
    pricing: { inputPerMillionUsd: 1, outputPerMillionUsd: 0, cachedInputPerMillionUsd: 1, cacheWriteInputPerMillionUsd: 1 },
    tokenizer: Tokenizer.TOKENIZER_APPROX,
    contextTokens: 8_192,
    maxOutputTokens: 4_096,
  },
} satisfies Record<string, Omit<PlannedAttempt, 'model' | 'timeoutMs' | 'maxRetries' | 'demoted'>>;
export type TestModel = keyof typeof MODELS;

const ALL_FORMATS = [
  ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT,
  ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT,
  ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
];
const NO_GUARDRAILS: Guardrails = { maxPromptTokens: 0, allowedResponseFormats: ALL_FORMATS, restrictTools: false, allowedTools: [] };

interface RouteSpec {
  maxTokensCap: number;
  defaultMaxTokens: number;
  timeoutMs: number;
  guardrails: Partial<Guardrails>;
}
/** The route defaults of the config schema (max_tokens 4096, default 1024, 30 s). */
const DEFAULT_ROUTE: RouteSpec = { maxTokensCap: 4_096, defaultMaxTokens: 1_024, timeoutMs: 30_000, guardrails: {} };

/** Routes as the router puts their caps and guardrails into plans. */
export const ROUTES: Record<string, Partial<RouteSpec>> = {
  chat: { maxTokensCap: 2_048, defaultMaxTokens: 256, timeoutMs: 10_000 },
  fallback: { maxTokensCap: 1_024, defaultMaxTokens: 128 },
  guarded: { guardrails: { maxPromptTokens: 100 } },
  'tiny-prompt': { guardrails: { maxPromptTokens: 5 } },
  'locked-down': { guardrails: { allowedResponseFormats: [ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT], restrictTools: true, allowedTools: ['lookup_order'] } },
  'no-tools': { guardrails: { restrictTools: true, allowedTools: [] } },
  embeddings: { maxTokensCap: 1, defaultMaxTokens: 1, timeoutMs: 4_000 },
};

export function testAttempt(model: TestModel, over: Partial<PlannedAttempt> = {}): PlannedAttempt {
  return { model, timeoutMs: 0, maxRetries: 0, demoted: '', ...MODELS[model], ...over };
}

/**
 * A plan of `route` over `models`, as the router would return it for a prompt that every model
 * fits: the plan holds for every prompt up to the smallest context of its models, and for every
 * sticky bucket (no split).
 */
export function testPlan(route: string, models: TestModel[], over: Partial<Plan> = {}): Plan {
  const r = { ...DEFAULT_ROUTE, ...ROUTES[route] };
  const attempts = models.map((m) => testAttempt(m));
  return Plan.fromPartial({
    route,
    rule: 'default',
    attempts,
    fallbackTriggers: [
      FallbackTrigger.FALLBACK_TRIGGER_TIMEOUT,
      FallbackTrigger.FALLBACK_TRIGGER_HTTP_5XX,
      FallbackTrigger.FALLBACK_TRIGGER_HTTP_429,
      FallbackTrigger.FALLBACK_TRIGGER_CONNECTION_ERROR,
    ],
    maxTokensCap: r.maxTokensCap,
    defaultMaxTokens: r.defaultMaxTokens,
    timeoutMs: r.timeoutMs,
    skipped: [],
    retryBackoffMs: 200,
    guardrails: { ...NO_GUARDRAILS, ...r.guardrails },
    promptTokensMin: 0,
    promptTokensMax: Math.min(...attempts.map((a) => a.contextTokens)),
    stickyBucketMin: 0,
    stickyBucketMax: STICKY_BUCKETS - 1,
    ...over,
  });
}

/** The edge's sections of a whole config file: the tenants' prompt-log policy, the usage labels, the prompt templates. */
export const TEST_CONFIG_YAML = `
default_route: chat
usage_labels: { feature_key: feature }
providers:
  sim-openai: { kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: "\${EDGE_TEST_UNSET_KEY}" }
tiers:
  startup: { limits: { requests_per_minute: 120 } }
tenants:
  acme: { tier: startup }
  startup-co: { tier: startup, log_prompts: false }
  chatty: { tier: startup, log_prompts: true }
templates:
  answer:
    pinned: v1
    rollout: [{ version: v2, share: 0.1 }, { version: v3, share: 0.2 }]
    versions:
      v1:
        system: "You help {{product}} customers."
        variables: [product]
        defaults: { route: support-chat, temperature: 0.2, max_tokens: 300, stop: [END], response_format: { type: json_object } }
      v2: { system: "You help {{product}} customers on {{plan}}.", variables: [product, plan] }
      v3: { system: Be brief., defaults: { model: small-fast } }
`;

export function edgeTestSections(yaml = TEST_CONFIG_YAML): EdgeSections {
  return parseSections(edgeSectionsSchema, yaml, 'edge-test.yaml', {});
}
