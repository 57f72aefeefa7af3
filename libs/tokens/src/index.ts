import { createRequire } from 'node:module';
import { Tokenizer } from '@llmgw/proto/router';

type O200k = typeof import('gpt-tokenizer');
let o200k: O200k | undefined;

/**
 * gpt-tokenizer's o200k encoding, loaded by the first count that needs it rather than at import
 * (its tables take about 65 MB and 190 ms): services and models that never count never pay.
 */
export function o200kTokenizer(): O200k {
  return (o200k ??= createRequire(import.meta.url)('gpt-tokenizer') as O200k);
}

export type TokenizerFamily = 'openai' | 'approx';

/** The family of a plan's tokenizer (the router decides which one a model uses). */
export function familyOf(tokenizer: Tokenizer): TokenizerFamily {
  return tokenizer === Tokenizer.TOKENIZER_OPENAI ? 'openai' : 'approx';
}

/**
 * Tokens in a text. OpenAI models get the real o200k tokenizer; for the others (Anthropic,
 * Gemini, open models) we use a documented estimate of one token per 4 characters, rounded up.
 * Such counts are marked TOKEN_SOURCE_ESTIMATED in usage events.
 */
export function countTokens(text: string, family: TokenizerFamily = 'openai'): number {
  if (text.length === 0) return 0;
  if (family === 'openai') return openaiTokens(text).tokens;
  return Math.ceil(text.length / 4);
}

/** Runs without whitespace at least this long are cut: BPE's time grows with the square of a word's length. */
const LONG_RUN = /(\S{1024,})/;
const SLICE_CHARS = 256;
/** A prompt that contains `<|endoftext|>` means the text, as the providers count it, not the special token (the default throws). */
const AS_TEXT = { disallowedSpecial: new Set<string>() };

/**
 * The o200k count, exact for any text whose words are under 1,024 characters. Longer runs (no
 * real word is; a hostile prompt of 2 MiB of one "word" would take BPE half an hour) are counted
 * in 256-character slices: linear time, and `cuts` says how often a token may have been split.
 */
function openaiTokens(text: string): { tokens: number; cuts: number } {
  const cached = recentCounts.get(text);
  if (cached) return cached;
  const counted = countOpenai(text);
  recentCounts.set(text, counted);
  return counted;
}

/**
 * The counts of recently seen texts. A conversation resends its whole history on every turn and
 * a team's system prompt is the same on every request, so most messages of a request were counted
 * before: a lookup replaces a BPE pass. Bounded by the characters it holds (least recently used
 * first out); texts longer than `maxText` are counted every time (V8 hashes a string longer than
 * 16,383 characters by its length alone, so long keys would collide).
 */
export class RecentCounts {
  private readonly counts = new Map<string, { tokens: number; cuts: number }>();
  private chars = 0;

  constructor(
    private readonly maxChars: number,
    private readonly maxText: number,
  ) {}

  get(text: string): { tokens: number; cuts: number } | undefined {
    const hit = this.counts.get(text);
    if (hit) {
      this.counts.delete(text);
      this.counts.set(text, hit);
    }
    return hit;
  }

  set(text: string, counted: { tokens: number; cuts: number }): void {
    if (text.length > this.maxText || this.counts.has(text)) return;
    this.counts.set(text, counted);
    this.chars += text.length;
    for (const oldest of this.counts.keys()) {
      if (this.chars <= this.maxChars) break;
      this.counts.delete(oldest);
      this.chars -= oldest.length;
    }
  }
}

/** About 8 MB of strings at most. */
const recentCounts = new RecentCounts(4_000_000, 16_383);

function countOpenai(text: string): { tokens: number; cuts: number } {
  if (!LONG_RUN.test(text)) return { tokens: o200kTokenizer().encode(text, AS_TEXT).length, cuts: 0 };
  let tokens = 0;
  let cuts = 0;
  for (const [i, part] of text.split(LONG_RUN).entries()) {
    if (i % 2 === 0) {
      if (part.length > 0) tokens += o200kTokenizer().encode(part, AS_TEXT).length;
      continue;
    }
    for (let at = 0; at < part.length; at += SLICE_CHARS) tokens += o200kTokenizer().encode(part.slice(at, at + SLICE_CHARS), AS_TEXT).length;
    cuts += Math.ceil(part.length / SLICE_CHARS) + 1;
  }
  return { tokens, cuts };
}

/**
 * A count no tokenizer of the family can exceed, for reservations: exact for openai (but for runs
 * of 1,024 characters without whitespace, see openaiTokens); for approx,
 * the text's UTF-8 bytes, since every token of a byte-level tokenizer covers at least one byte.
 * The 4-characters estimate is not a bound: code, digits and non-Latin scripts run far denser.
 */
export function countTokensUpperBound(text: string, family: TokenizerFamily): number {
  if (family !== 'openai') return Buffer.byteLength(text, 'utf8');
  if (text.length === 0) return 0;
  // Each cut of a long run may split one token in two, or keep two from merging: one more each.
  const { tokens, cuts } = openaiTokens(text);
  return tokens + cuts;
}

/** Per-message framing overhead (role and separators), as OpenAI documents for chat models. */
export const MESSAGE_OVERHEAD_TOKENS = 4;
export const REPLY_PRIMING_TOKENS = 3;

function chatTokens(messages: readonly { content: string }[], count: (text: string) => number): number {
  let total = REPLY_PRIMING_TOKENS;
  for (const m of messages) total += MESSAGE_OVERHEAD_TOKENS + count(m.content);
  return total;
}

export function countChatTokens(messages: readonly { content: string }[], family: TokenizerFamily = 'openai'): number {
  return chatTokens(messages, (text) => countTokens(text, family));
}

export function countChatTokensUpperBound(messages: readonly { content: string }[], family: TokenizerFamily): number {
  return chatTokens(messages, (text) => countTokensUpperBound(text, family));
}

/**
 * One prompt's counts, each computed at most once per request. The edge needs the estimate (for
 * routing and the prompt-size guardrail) and the upper bound (for the reservation); for openai
 * both come from one exact count, and the tokenizer is the costly part of the edge's hot path.
 */
export class PromptTokens {
  private readonly cache = new Map<string, number>();
  private openaiCounts?: { tokens: number; cuts: number };

  private constructor(
    private readonly parts: readonly { content: string }[],
    /** Chat messages carry framing tokens; embedding inputs do not. */
    private readonly framed: boolean,
  ) {}

  static chat(messages: readonly { content: string }[]): PromptTokens {
    return new PromptTokens(messages, true);
  }

  static texts(texts: readonly string[]): PromptTokens {
    return new PromptTokens(texts.map((content) => ({ content })), false);
  }

  estimate(family: TokenizerFamily): number {
    return family === 'openai' ? this.openai().tokens : this.memo(family, (text) => countTokens(text, family));
  }

  upperBound(family: TokenizerFamily): number {
    if (family !== 'openai') return this.memo(`${family}:bound`, (text) => countTokensUpperBound(text, family));
    const { tokens, cuts } = this.openai();
    return tokens + cuts;
  }

  /** One pass of the tokenizer gives both openai counts. */
  private openai(): { tokens: number; cuts: number } {
    if (!this.openaiCounts) {
      let cuts = 0;
      const tokens = this.memo('openai', (text) => {
        const r = text.length === 0 ? { tokens: 0, cuts: 0 } : openaiTokens(text);
        cuts += r.cuts;
        return r.tokens;
      });
      this.openaiCounts = { tokens, cuts };
    }
    return this.openaiCounts;
  }

  private memo(key: string, count: (text: string) => number): number {
    let n = this.cache.get(key);
    if (n === undefined) {
      n = this.framed ? chatTokens(this.parts, count) : this.parts.reduce((sum, p) => sum + count(p.content), 0);
      this.cache.set(key, n);
    }
    return n;
  }
}
