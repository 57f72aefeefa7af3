import { readFileSync } from 'node:fs';
import { parseGatewayConfig, type GatewayConfig } from '@llmgw/config';
import { silentLogger } from '@llmgw/logging';
import { FallbackTrigger, type Plan, type PlannedAttempt } from '@llmgw/proto/router';
import { ChatRequest, LatencyClass, Role, type Message } from '@llmgw/proto/v1';
import { CircuitBreaker, DEFAULT_BREAKER } from './circuit-breaker.js';
import { Executor, type ExecutionContext } from './execute.js';
import { registryFromConfig, type ProviderRegistry } from './providers/registry.js';
import type { ChatParams, ChatStreamEvent, StreamDecoder } from './providers/types.js';
import { SseParser } from './stream.js';

/** A gateway config whose providers all point at one simulator (test-only). */
export function testConfig(simUrl: string): GatewayConfig {
  const model = (provider: string, upstream: string, caps: string, tokenizer = 'approx', price = '{ input_per_million_usd: 1, output_per_million_usd: 2 }') =>
    `  ${provider}-${upstream}:\n    provider: ${provider}\n    upstream_model: ${upstream}\n    pricing: ${price}\n    capabilities: [${caps}]\n    tokenizer: ${tokenizer}\n    max_output_tokens: 100000\n`;
  const all = 'tools, json_object, json_schema, streaming';
  const yaml = `
default_route: r
providers:
  oa: { kind: openai, base_url: "${simUrl}/v1", api_key: sim-key, max_connections: 16 }
  oabad: { kind: openai, base_url: "${simUrl}/v1", api_key: bad-key }
  az: { kind: azure-openai, base_url: "${simUrl}", api_key: sim-key, api_version: "2024-10-21" }
  an: { kind: anthropic, base_url: "${simUrl}", api_key: sim-key, api_version: "2023-06-01" }
  ge: { kind: gemini, base_url: "${simUrl}", api_key: sim-key }
models:
${model('oa', 'gpt-4o-mini', all, 'openai', '{ input_per_million_usd: 0.15, output_per_million_usd: 0.6 }')}${model('oabad', 'gpt-4o-mini', all)}${model('az', 'my-deployment', all)}${model('an', 'claude-haiku-4-5', 'tools, json_object, json_schema, streaming')}${model('ge', 'gemini-2.5-flash', all)}${model('oa', 'notools', 'streaming')}  oa-embed:
    provider: oa
    upstream_model: text-embedding-3-small
    pricing: { input_per_million_usd: 0.02 }
    capabilities: [embeddings]
    tokenizer: openai
  ge-embed:
    provider: ge
    upstream_model: text-embedding-004
    pricing: { input_per_million_usd: 0.1 }
    capabilities: [embeddings]
routes:
  r:
    rules: [{ name: default, model: oa-gpt-4o-mini }]
tiers: { t: {} }
tenants: { acme: { tier: t } }
`;
  return parseGatewayConfig(yaml, 'test', {});
}

/** A planned attempt: `model` is the config model; `upstream` overrides its upstream name (fault suffixes). */
export function attempt(model: string, upstream?: string, extra: Partial<PlannedAttempt> = {}): PlannedAttempt {
  const provider = model.split('-')[0] as string;
  return { model, provider, upstreamModel: upstream ?? model.slice(provider.length + 1), timeoutMs: 5_000, maxRetries: 0, ...extra };
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
    ...extra,
  };
}

export function user(content: string): Message {
  return { role: Role.ROLE_USER, content, name: '', toolCalls: [], toolCallId: '' };
}

export function chat(content: string, extra: Partial<ChatRequest> = {}): ChatRequest {
  return { ...ChatRequest.fromPartial({ messages: [user(content)], latencyClass: LatencyClass.LATENCY_CLASS_INTERACTIVE }), ...extra };
}

export function ctxOf(signal: AbortSignal = new AbortController().signal, remainingMs = Infinity): ExecutionContext {
  const start = Date.now();
  return { signal, remainingMs: () => (remainingMs === Infinity ? Infinity : remainingMs - (Date.now() - start)), logger: silentLogger() };
}

export function executorFor(config: GatewayConfig, opts: { breaker?: CircuitBreaker; random?: () => number } = {}): { executor: Executor; registry: ProviderRegistry } {
  const registry = registryFromConfig(config);
  const executor = new Executor({
    config,
    registry,
    breaker: opts.breaker ?? new CircuitBreaker({ ...DEFAULT_BREAKER, now: Date.now }),
    logger: silentLogger(),
    now: Date.now,
    random: opts.random,
  });
  return { executor, registry };
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
