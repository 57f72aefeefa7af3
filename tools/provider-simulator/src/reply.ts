import { countTokens as countO200k, o200kTokenizer } from '@llmgw/tokens';
import { sampleFromSchema } from './schema-sample.js';

/**
 * Deterministic reply generation shared by all three wire formats.
 *
 * Token accounting (documented in README.md):
 * - every token count uses `encode` from gpt-tokenizer (o200k_base), with special-token
 *   strings such as `<|endoftext|>` treated as plain text;
 * - input tokens = REPLY_PRIMING_TOKENS plus the sum over messages (system prompt included) of
 *   `tokens(text of the message) + PER_MESSAGE_TOKEN_OVERHEAD`, plus the tokens of the JSON of
 *   the tool definitions when tools are given: OpenAI's documented chat framing, which is what
 *   the gateway's openai tokenizer counts, so its estimate of a prompt equals what is billed;
 * - output tokens = tokens of the reply text, or of `name + arguments JSON` for a tool call.
 */
export const PER_MESSAGE_TOKEN_OVERHEAD = 4;
/** Every reply is primed with `<|start|>assistant<|message|>`. */
export const REPLY_PRIMING_TOKENS = 3;
export const LONG_REPLY_TOKENS = 400;
const MAX_MARKER_TOKENS = 100_000;
const REPLY_WORDS = 8;
const CACHE_LIMIT = 4096;
const ENCODE_OPTIONS = { disallowedSpecial: new Set<string>() };
const FILLER =
  ' The simulator produces deterministic text so that gateway tests and benchmarks can observe many streamed deltas.';

export interface ToolSpec {
  name: string;
  /** JSON schema of the arguments (OpenAI `parameters`, Anthropic `input_schema`, Gemini `parameters`). */
  schema: unknown;
}

export interface ReplyRequest {
  model: string;
  /** Text of the last user turn (markers are read from here). */
  lastUserText: string;
  /** True when the conversation ends with a tool result: `[[tool]]` is then not honoured again. */
  endsWithToolResult: boolean;
  maxTokens?: number | undefined;
  tools: readonly ToolSpec[];
  /** Structured output requested: a JSON object (sampled from `schema` when given). */
  json?: { schema?: unknown } | undefined;
}

export interface TextReply {
  kind: 'text';
  text: string;
  tokens: readonly number[];
  outputTokens: number;
  /** True when `max_tokens` cut the reply. */
  truncated: boolean;
}

export interface ToolReply {
  kind: 'tool';
  name: string;
  args: Record<string, unknown>;
  argsJson: string;
  outputTokens: number;
}

export interface RefusalReply {
  kind: 'refusal';
  outputTokens: 0;
}

export type Reply = TextReply | ToolReply | RefusalReply;

const tokenCache = new Map<string, readonly number[]>();

/** Tokenizes with a small bounded cache: benchmarks send the same prompts over and over. */
export function tokenize(text: string): readonly number[] {
  if (text.length === 0) return [];
  const hit = tokenCache.get(text);
  if (hit) return hit;
  const tokens = o200kTokenizer().encode(text, ENCODE_OPTIONS);
  if (text.length <= 20_000) {
    if (tokenCache.size >= CACHE_LIMIT) tokenCache.clear();
    tokenCache.set(text, tokens);
  }
  return tokens;
}

const countCache = new Map<string, number>();

/** o200k counts as @llmgw/tokens makes them (linear also on a hostile 2 MiB "word"), cached like tokenize. */
export function countTokens(text: string): number {
  const hit = countCache.get(text);
  if (hit !== undefined) return hit;
  const n = countO200k(text, 'openai');
  if (text.length <= 20_000) {
    if (countCache.size >= CACHE_LIMIT) countCache.clear();
    countCache.set(text, n);
  }
  return n;
}

/** Input tokens: the reply priming, per-message text plus overhead, plus the JSON of the tool definitions. */
export function countPromptTokens(messageTexts: readonly string[], toolsJson = ''): number {
  let total = REPLY_PRIMING_TOKENS;
  for (const text of messageTexts) total += countTokens(text) + PER_MESSAGE_TOKEN_OVERHEAD;
  return total + countTokens(toolsJson);
}

const MARKER_RE = /\[\[[^\]]*\]\]/g;
const CACHED_RE = /\[\[cached:(\d+)\]\]/;
const CACHE_WRITE_RE = /\[\[cache_write:(\d+)\]\]/;
const REASONING_RE = /\[\[reasoning:(\d+)\]\]/;

/**
 * What `[[cached:N]]`, `[[cache_write:N]]` and `[[reasoning:N]]` ask for: N of the prompt's tokens
 * read from (or written to) the prompt cache, capped at the prompt (reads first), and N reasoning
 * tokens spent before the answer. Parts of the usage as the wire formats report them: cached and
 * cache-write tokens are among the input tokens, reasoning tokens are output tokens.
 */
export interface UsageParts {
  cachedTokens: number;
  cacheWriteTokens: number;
  reasoningTokens: number;
}

export function usageParts(lastUserText: string, promptTokens: number): UsageParts {
  const asked = (re: RegExp) => Math.min(Number(re.exec(lastUserText)?.[1] ?? 0), MAX_MARKER_TOKENS);
  const cachedTokens = Math.min(asked(CACHED_RE), promptTokens);
  return { cachedTokens, cacheWriteTokens: Math.min(asked(CACHE_WRITE_RE), promptTokens - cachedTokens), reasoningTokens: asked(REASONING_RE) };
}
const BADJSON_RE = /-badjson(?![a-z0-9])/i;
const TOKENS_MARKER_RE = /\[\[tokens:(\d+)\]\]/;

export function buildReply(req: ReplyRequest): Reply {
  const text = req.lastUserText;
  if (text.includes('[[refuse]]')) return { kind: 'refusal', outputTokens: 0 };
  const firstTool = req.tools[0];
  if (firstTool && !req.endsWithToolResult && text.includes('[[tool]]')) {
    const sampled = sampleFromSchema(firstTool.schema ?? { type: 'object' });
    const args = typeof sampled === 'object' && sampled !== null && !Array.isArray(sampled) ? (sampled as Record<string, unknown>) : {};
    const argsJson = JSON.stringify(args);
    return { kind: 'tool', name: firstTool.name, args, argsJson, outputTokens: countTokens(firstTool.name) + countTokens(argsJson) };
  }

  let tokens: readonly number[];
  const exact = TOKENS_MARKER_RE.exec(text);
  if (req.json) {
    // A model that answers in the wrong shape: `[[badjson]]` in the last user turn, or `-badjson` in the model name.
    const wrongShape = text.includes('[[badjson]]') || BADJSON_RE.test(req.model);
    const value = wrongShape ? { unexpected_shape: true } : req.json.schema !== undefined ? sampleFromSchema(req.json.schema) : { model: req.model, reply: baseText(req) };
    tokens = tokenize(JSON.stringify(value));
  } else if (exact) {
    tokens = tokensOfLength(baseText(req), Math.min(Number(exact[1]), MAX_MARKER_TOKENS));
  } else if (text.includes('[[long]]')) {
    tokens = tokensOfLength(baseText(req), LONG_REPLY_TOKENS);
  } else {
    tokens = tokenize(baseText(req));
  }

  let truncated = false;
  if (req.maxTokens !== undefined && req.maxTokens >= 0 && tokens.length > req.maxTokens) {
    tokens = tokens.slice(0, req.maxTokens);
    truncated = true;
  }
  return { kind: 'text', text: o200kTokenizer().decode(tokens), tokens, outputTokens: tokens.length, truncated };
}

function baseText(req: ReplyRequest): string {
  // Words are cut to 64 characters: a reply echoing a 2 MiB "word" would cost the tokenizer minutes.
  const words = req.lastUserText.replace(MARKER_RE, ' ').split(/\s+/).filter((w) => w.length > 0).slice(0, REPLY_WORDS).map((w) => w.slice(0, 64));
  return words.length > 0 ? `Simulated reply from ${req.model}: ${words.join(' ')}` : `Simulated reply from ${req.model}.`;
}

function tokensOfLength(prefix: string, n: number): readonly number[] {
  const prefixTokens = tokenize(prefix);
  if (prefixTokens.length >= n) return prefixTokens.slice(0, n);
  const fillerTokens = tokenize(FILLER);
  const out = [...prefixTokens];
  while (out.length < n) out.push(...fillerTokens);
  return out.slice(0, n);
}

/** One streamed piece of a text reply. */
export interface TextPiece {
  text: string;
  tokenCount: number;
}

/**
 * Splits reply tokens into stream pieces of 1–4 tokens (cycling 1, 2, 3, 4 so that tests see
 * several deltas). A piece that would cut a multi-byte character is merged with the next one.
 */
export function chunkTokens(tokens: readonly number[]): TextPiece[] {
  const pieces: TextPiece[] = [];
  let start = 0;
  let size = 1;
  while (start < tokens.length) {
    let end = Math.min(tokens.length, start + size);
    let text = o200kTokenizer().decode(tokens.slice(start, end));
    while (text.includes('\uFFFD') && end < tokens.length) {
      end++;
      text = o200kTokenizer().decode(tokens.slice(start, end));
    }
    pieces.push({ text, tokenCount: end - start });
    start = end;
    size = (size % 4) + 1;
  }
  return pieces;
}

/** Splits a string (tool-call arguments JSON) into a few pieces for streaming. */
export function chunkString(text: string, pieceLength = 8): string[] {
  if (text.length === 0) return [''];
  const chars = Array.from(text);
  const pieces: string[] = [];
  for (let i = 0; i < chars.length; i += pieceLength) pieces.push(chars.slice(i, i + pieceLength).join(''));
  return pieces;
}

/**
 * A tool call's arguments as stream pieces (`chunkString`), each with its share of the output
 * tokens: the name's tokens come with the first piece, the argument tokens in proportion to the
 * characters sent. The shares add up to `reply.outputTokens`, so a complete stream bills its
 * reported usage and a cut one bills about what it sent.
 */
export function chunkToolArgs(reply: ToolReply): TextPiece[] {
  const nameTokens = countTokens(reply.name);
  const argTokens = reply.outputTokens - nameTokens;
  const totalChars = reply.argsJson.length;
  let chars = 0;
  let billed = 0;
  return chunkString(reply.argsJson).map((text) => {
    chars += text.length;
    const soFar = nameTokens + (totalChars > 0 ? Math.floor((argTokens * chars) / totalChars) : argTokens);
    const piece = { text, tokenCount: soFar - billed };
    billed = soFar;
    return piece;
  });
}
