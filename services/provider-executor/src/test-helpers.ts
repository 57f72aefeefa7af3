import { readFileSync } from 'node:fs';
import { executorSectionsSchema, parseSections, type ExecutorSections } from '@llmgw/config';
import type { AppError } from '@llmgw/errors';
import { silentLogger } from '@llmgw/logging';
import {
  ToolChoiceMode,
  type ChatParams as ChatParamsProto,
  type ExecuteChatRequest,
  type ExecuteEmbedRequest,
  type ToolSpec as ToolSpecProto,
} from '@llmgw/proto/executor';
import { FallbackTrigger, SchemaFailurePolicy, Tokenizer, type Plan, type PlannedAttempt, type Pricing } from '@llmgw/proto/router';
import { CacheMode, ResponseFormatType, Role, type EmbedRequest, type Message, type UsageRecorded } from '@llmgw/proto/v1';
import { CircuitBreaker, DEFAULT_BREAKER } from './circuit-breaker.js';
import { Executor, type ExecutionContext, type UsageSink } from './execute.js';
import type { LatencyWindow } from './latency-window.js';
import { registryFromProviders, type ProviderRegistry } from './providers/registry.js';
import type { ResponseCache } from './response-cache.js';
import type { ChatParams, ChatStreamEvent, StreamDecoder } from './providers/types.js';
import { SseParser } from './stream.js';

/**
 * The executor's section of a config file whose providers all point at one simulator
 * (test-only), parsed as the executor parses it: providers and nothing else.
 */
export function testProviders(simUrl: string): ExecutorSections {
  const yaml = `
providers:
  oa: { kind: openai, base_url: "${simUrl}/v1", api_key: sim-key, max_connections: 16 }
  oabad: { kind: openai, base_url: "${simUrl}/v1", api_key: bad-key }
  az: { kind: azure-openai, base_url: "${simUrl}", api_key: sim-key, api_version: "2024-10-21" }
  an: { kind: anthropic, base_url: "${simUrl}", api_key: sim-key, api_version: "2023-06-01" }
  ge: { kind: gemini, base_url: "${simUrl}", api_key: sim-key }
`;
  return parseSections(executorSectionsSchema, yaml, 'test', {});
}

/** What the router knows of a model and puts in each PlannedAttempt (the executor holds no model catalogue). */
interface CatalogueEntry {
  provider: string;
  upstreamModel: string;
  pricing: Pricing;
  tokenizer: Tokenizer;
  contextTokens: number;
  maxOutputTokens: number;
}

/** A price without cache discounts, as the router resolves one. */
export const price = (input: number, output = 0): Pricing => ({ inputPerMillionUsd: input, outputPerMillionUsd: output, cachedInputPerMillionUsd: input, cacheWriteInputPerMillionUsd: input });
const chatModel = (provider: string, upstreamModel: string, tokenizer = Tokenizer.TOKENIZER_APPROX, pricing = price(1, 2)): CatalogueEntry => ({
  provider,
  upstreamModel,
  pricing,
  tokenizer,
  contextTokens: 128_000,
  maxOutputTokens: 100_000,
});

/** The models of the tests, as the router would plan them. */
export const MODELS: Readonly<Record<string, CatalogueEntry>> = {
  'oa-gpt-4o-mini': chatModel('oa', 'gpt-4o-mini', Tokenizer.TOKENIZER_OPENAI, price(0.15, 0.6)),
  'oabad-gpt-4o-mini': chatModel('oabad', 'gpt-4o-mini'),
  'az-my-deployment': chatModel('az', 'my-deployment'),
  'an-claude-haiku-4-5': chatModel('an', 'claude-haiku-4-5'),
  'ge-gemini-2.5-flash': chatModel('ge', 'gemini-2.5-flash'),
  'oa-embed': { ...chatModel('oa', 'text-embedding-3-small', Tokenizer.TOKENIZER_OPENAI, price(0.02)), maxOutputTokens: 0 },
  'ge-embed': { ...chatModel('ge', 'text-embedding-004', Tokenizer.TOKENIZER_APPROX, price(0.1)), maxOutputTokens: 0 },
};

/**
 * A planned attempt as the router builds it: `model` is a model of MODELS (pricing, tokenizer,
 * limits filled in); `upstream` overrides its upstream name (fault suffixes of the simulator).
 */
export function attempt(model: string, upstream?: string, extra: Partial<PlannedAttempt> = {}): PlannedAttempt {
  const m = MODELS[model];
  if (!m) throw new Error(`test model ${model} is not in MODELS`);
  return {
    model,
    provider: m.provider,
    upstreamModel: upstream ?? m.upstreamModel,
    timeoutMs: 5_000,
    maxRetries: 0,
    pricing: m.pricing,
    tokenizer: m.tokenizer,
    contextTokens: m.contextTokens,
    maxOutputTokens: m.maxOutputTokens,
    demoted: '',
    ...extra,
  };
}

export const ALL_TRIGGERS = [
  FallbackTrigger.FALLBACK_TRIGGER_TIMEOUT,
  FallbackTrigger.FALLBACK_TRIGGER_HTTP_5XX,
  FallbackTrigger.FALLBACK_TRIGGER_HTTP_429,
  FallbackTrigger.FALLBACK_TRIGGER_CONNECTION_ERROR,
];

export function plan(attempts: PlannedAttempt[], extra: Partial<Plan> = {}): Plan {
  return {
    route: 'r',
    rule: 'default',
    attempts,
    fallbackTriggers: ALL_TRIGGERS,
    maxTokensCap: 4096,
    defaultMaxTokens: 256,
    timeoutMs: 10_000,
    skipped: [],
    retryBackoffMs: 20,
    guardrails: { maxPromptTokens: 0, allowedResponseFormats: [], restrictTools: false, allowedTools: [] },
    promptTokensMin: 0,
    promptTokensMax: Number.MAX_SAFE_INTEGER,
    schemaFailurePolicy: SchemaFailurePolicy.SCHEMA_FAILURE_POLICY_REPAIR,
    hedge: undefined,
    split: '',
    intent: '',
    stickyBucketMin: 0,
    stickyBucketMax: 9_999,
    ...extra,
  };
}

export function user(content: string): Message {
  return { role: Role.ROLE_USER, content, name: '', toolCalls: [], toolCallId: '' };
}

/** A tool as the edge hands it over: parameters already parsed. */
export function tool(name: string, parameters: Record<string, unknown> = { type: 'object', properties: {} }, description = ''): ToolSpecProto {
  return { name, description, parameters };
}

/**
 * Normalised params as the edge sends them (proto ChatParams): max_tokens resolved, tools and
 * schemas parsed, tool choice and response format resolved. `content` becomes one user message.
 */
export function chatParams(content: string, extra: Partial<ChatParamsProto> = {}): ChatParamsProto {
  return {
    messages: [user(content)],
    maxTokens: 256,
    temperature: undefined,
    topP: undefined,
    stop: [],
    tools: [],
    toolChoice: { mode: ToolChoiceMode.TOOL_CHOICE_MODE_AUTO, name: '' },
    responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT, name: '', schema: undefined },
    user: '',
    batch: false,
    promptTokens: [],
    noHedge: false,
    cache: CacheMode.CACHE_MODE_UNSPECIFIED,
    ...extra,
  };
}

/** An ExecuteChatRequest (also an ExecuteChatStreamRequest) with its plan and params. */
export function chatRequest(content: string, attempts: PlannedAttempt[], params: Partial<ChatParamsProto> = {}, planExtra: Partial<Plan> = {}, requestId = 'req-1'): ExecuteChatRequest {
  return { requestId, tenantId: 'acme', keyId: 'key-1', request: undefined, plan: plan(attempts, planExtra), params: chatParams(content, params) };
}

export function embedRequest(inputs: string[], attempts: PlannedAttempt[], extra: Partial<EmbedRequest> = {}, requestId = 'e-1'): ExecuteEmbedRequest {
  return {
    requestId,
    tenantId: 'acme',
    keyId: 'key-1',
    request: { route: 'r', inputs, model: '', user: '', timeoutMs: 0, metadata: {}, dimensions: 0, ...extra },
    plan: plan(attempts),
    promptTokens: [],
  };
}

export function ctxOf(signal: AbortSignal = new AbortController().signal, remainingMs = Infinity): ExecutionContext {
  const start = Date.now();
  return { signal, remainingMs: () => (remainingMs === Infinity ? Infinity : remainingMs - (Date.now() - start)), logger: silentLogger() };
}

/** A UsageSink that keeps what it is given (unit tests: the UsagePublisher is tested on its own). */
export class RecordingUsage implements UsageSink {
  readonly events: UsageRecorded[] = [];
  /** Write-ahead notes, in order. */
  readonly notes: UsageRecorded[] = [];
  /** Set to refuse notes as a full outbox does. */
  refuse: AppError | undefined;

  async note(event: UsageRecorded): Promise<void> {
    if (this.refuse) throw this.refuse;
    this.notes.push(event);
  }

  publish(event: UsageRecorded): void {
    this.events.push(event);
  }

  /** The events of one request. */
  of(requestId: string): UsageRecorded[] {
    return this.events.filter((e) => e.requestId === requestId);
  }

  clear(): void {
    this.events.length = 0;
    this.notes.length = 0;
    this.refuse = undefined;
  }
}

export interface TestExecutor {
  executor: Executor;
  registry: ProviderRegistry;
  usage: RecordingUsage;
}

export function executorFor(
  providers: ExecutorSections,
  opts: { breaker?: CircuitBreaker; random?: () => number; usage?: RecordingUsage; window?: LatencyWindow; cache?: ResponseCache } = {},
): TestExecutor {
  const registry = registryFromProviders(providers.providers);
  const usage = opts.usage ?? new RecordingUsage();
  const executor = new Executor({
    providers: providers.providers,
    registry,
    breaker: opts.breaker ?? new CircuitBreaker({ ...DEFAULT_BREAKER, now: Date.now }),
    logger: silentLogger(),
    now: Date.now,
    random: opts.random,
    usage,
    window: opts.window,
    cache: opts.cache,
  });
  return { executor, registry, usage };
}

/** Feeds an SSE text through the shared parser and a provider decoder in `chunkSize`-byte pieces. */
export function decodeSse(text: string, decoder: StreamDecoder, chunkSize = 7): ChatStreamEvent[] {
  const out: ChatStreamEvent[] = [];
  const parser = new SseParser((event, data) => {
    const ev = decoder.decode(event, data);
    if (ev) out.push(ev);
  });
  const bytes = new TextEncoder().encode(text);
  for (let i = 0; i < bytes.length; i += chunkSize) parser.push(bytes.subarray(i, i + chunkSize));
  parser.end();
  return out;
}

export function fixture(dir: string, name: string): string {
  return readFileSync(new URL(`./providers/${dir}/__fixtures__/${name}`, import.meta.url), 'utf8');
}

/** Baseline params for translation tests. */
export function params(extra: Partial<ChatParams> = {}): ChatParams {
  return {
    messages: [user('hi')],
    maxTokens: 100,
    stop: [],
    responseFormat: { type: 'text' },
    tools: [],
    toolChoice: { type: 'auto' },
    user: '',
    ...extra,
  };
}
