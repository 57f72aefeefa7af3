import { classifyHttpStatus, ProviderError, type HeaderBag } from '../errors.js';
import type { GeminiErrorBody } from './wire.js';

/**
 * Gemini error body `{error: {code, message, status, details}}` → ProviderError. Gemini answers a
 * bad API key with 400 (reason API_KEY_INVALID): that is our configuration, not the caller's request.
 */
export function classifyGeminiError(provider: string, status: number, bodyText: string, headers: HeaderBag): ProviderError {
  let message = '';
  let keyInvalid = false;
  try {
    const body = JSON.parse(bodyText) as GeminiErrorBody;
    message = body.error?.message ? `${body.error.status ?? 'ERROR'}: ${body.error.message}` : '';
    keyInvalid = (body.error?.details ?? []).some((d) => d.reason === 'API_KEY_INVALID') || /API key not valid/i.test(message);
  } catch {
    message = bodyText.slice(0, 200);
  }
  if (keyInvalid && status === 400) {
    return new ProviderError('unavailable', `${provider} rejected the gateway's credentials (400): gateway configuration fault`, 'auth_config', status);
  }
  return classifyHttpStatus(provider, status, message, headers);
}
