import { classifyHttpStatus, type HeaderBag, type ProviderError } from '../errors.js';
import type { AnthropicErrorBody } from './wire.js';

/** Anthropic error body `{type: 'error', error: {type, message}}` → ProviderError (529 overloaded is a 5xx). */
export function classifyAnthropicError(provider: string, status: number, bodyText: string, headers: HeaderBag): ProviderError {
  let message = '';
  try {
    const body = JSON.parse(bodyText) as AnthropicErrorBody;
    message = body.error?.message ? `${body.error.type ?? 'error'}: ${body.error.message}` : '';
  } catch {
    message = bodyText.slice(0, 200);
  }
  return classifyHttpStatus(provider, status, message, headers);
}
