import { encode } from 'gpt-tokenizer';

export type TokenizerFamily = 'openai' | 'approx';

/**
 * Tokens in a text. OpenAI models get the real o200k tokenizer; for the others (Anthropic,
 * Gemini, open models) we use a documented estimate of one token per 4 characters, rounded up,
 * which over-counts slightly for English prose: safe for reservations, and such counts are
 * marked TOKEN_SOURCE_ESTIMATED in usage events.
 */
export function countTokens(text: string, family: TokenizerFamily = 'openai'): number {
  if (text.length === 0) return 0;
  if (family === 'openai') return encode(text).length;
  return Math.ceil(text.length / 4);
}

/** Per-message framing overhead (role and separators), as OpenAI documents for chat models. */
export const MESSAGE_OVERHEAD_TOKENS = 4;
export const REPLY_PRIMING_TOKENS = 3;

export function countChatTokens(messages: readonly { content: string }[], family: TokenizerFamily = 'openai'): number {
  let total = REPLY_PRIMING_TOKENS;
  for (const m of messages) total += MESSAGE_OVERHEAD_TOKENS + countTokens(m.content, family);
  return total;
}
