import type { FinishReason, Message, ToolCall, ToolCallDelta } from '@llmgw/proto/v1';

/** Provider-neutral chat parameters, built once per request by normalise.ts. */
export interface ChatParams {
  messages: readonly Message[];
  /** Always set: the request's value, else the plan's default. */
  maxTokens: number;
  temperature?: number | undefined;
  topP?: number | undefined;
  stop: readonly string[];
  responseFormat: ResponseFormatSpec;
  tools: readonly ToolSpec[];
  toolChoice: ToolChoice;
  /** End-user id for the provider's abuse tracking; '' for none. */
  user: string;
}

export type ResponseFormatSpec =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; name: string; schema: Record<string, unknown> };

export interface ToolSpec {
  name: string;
  description: string;
  /** JSON Schema of the arguments, parsed. */
  parameters: Record<string, unknown>;
}

export type ToolChoice = { type: 'auto' } | { type: 'none' } | { type: 'required' } | { type: 'tool'; name: string };

/**
 * Counts as reported by the provider; undefined means "not reported", not 0. As in the
 * OpenTelemetry GenAI conventions, input counts every input token (cache reads and writes
 * included) and output every output token (reasoning included); the parts are subsets.
 */
export interface ProviderUsage {
  inputTokens?: number | undefined;
  outputTokens?: number | undefined;
  /** Part of input read from the provider's prompt cache. */
  cachedInputTokens?: number | undefined;
  /** Part of input written to the provider's prompt cache. */
  cacheWriteInputTokens?: number | undefined;
  /** Part of output spent reasoning. */
  reasoningTokens?: number | undefined;
}

export interface ChatResult {
  content: string;
  toolCalls: ToolCall[];
  finishReason: FinishReason;
  usage: ProviderUsage;
  /** The model that answered, as the provider names it; undefined when it does not say. */
  model?: string | undefined;
}

/** One decoded piece of a provider stream; every field optional so one object carries all. */
export interface ChatStreamEvent {
  content?: string | undefined;
  toolCalls?: ToolCallDelta[] | undefined;
  finishReason?: FinishReason | undefined;
  /** Latest counts the provider reported (fields left undefined were not in this event). */
  usage?: ProviderUsage | undefined;
}

/** Pure, stateful decoder of one provider's server-sent events (lives in <provider>/stream.ts). */
export interface StreamDecoder {
  /** Decodes one SSE event; throws ProviderError for an in-stream error event. */
  decode(event: string, data: string): ChatStreamEvent | undefined;
  /** True once the provider's terminal event was seen; a body ending before that ended early. */
  readonly done: boolean;
}

export interface ChatCall {
  /** The provider's model name (Azure: the deployment). */
  upstreamModel: string;
  params: ChatParams;
  /** Aborts the upstream request (per-attempt timeout, caller cancel, overall deadline). */
  signal: AbortSignal;
}

export interface EmbedCall {
  upstreamModel: string;
  inputs: readonly string[];
  /** 0 = model default. */
  dimensions: number;
  user: string;
  signal: AbortSignal;
}

export interface EmbedResult {
  vectors: number[][];
  usage: ProviderUsage;
}

/**
 * One provider as configured (an entry of `providers:`). Built by registry.ts; the executor
 * never knows the wire format behind it. Failures are thrown as ProviderError.
 */
export interface ProviderAdapter {
  /** Provider id from config, e.g. "sim-openai". */
  readonly id: string;
  chat(call: ChatCall): Promise<ChatResult>;
  /**
   * Opens a stream. Resolves once the provider accepted the request (2xx headers), so that
   * HTTP errors are thrown here; iterating yields decoded events as fast as the caller pulls
   * and throws ProviderError when the body fails or ends before the provider's terminal event.
   */
  chatStream(call: ChatCall): Promise<AsyncIterable<ChatStreamEvent>>;
  embed(call: EmbedCall): Promise<EmbedResult>;
  /** Closes the connection pool. */
  close(): Promise<void>;
}
