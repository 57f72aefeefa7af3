import { encode } from 'gpt-tokenizer';
import { Tokenizer } from '@llmgw/proto/router';

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
  if (family === 'openai') return encode(text).length;
  return Math.ceil(text.length / 4);
}

/**
 * A count no tokenizer of the family can exceed, for reservations: exact for openai; for approx,
 * the text's UTF-8 bytes, since every token of a byte-level tokenizer covers at least one byte.
 * The 4-characters estimate is not a bound: code, digits and non-Latin scripts run far denser.
 */
export function countTokensUpperBound(text: string, family: TokenizerFamily): number {
  return family === 'openai' ? countTokens(text, family) : Buffer.byteLength(text, 'utf8');
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
 * both are the same exact count, and the tokenizer is the costly part of the edge's hot path.
 */
export class PromptTokens {
  private readonly cache = new Map<string, number>();

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
    return this.memo(family, (text) => countTokens(text, family));
  }

  upperBound(family: TokenizerFamily): number {
    return family === 'openai' ? this.estimate(family) : this.memo(`${family}:bound`, (text) => countTokensUpperBound(text, family));
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
