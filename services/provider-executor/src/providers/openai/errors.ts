import { classifyHttpStatus, ProviderError, type HeaderBag } from '../errors.js';
import type { OpenAIErrorBody } from './wire.js';

/**
 * OpenAI / Azure OpenAI / OpenAI-compatible error body `{error: {message, type, code}}` → ProviderError.
 * Azure's content filter answers 400 with code `content_filter`: a safety outcome, not a bad request.
 */
export function classifyOpenAIError(provider: string, status: number, bodyText: string, headers: HeaderBag): ProviderError {
  let message = '';
  let code = '';
  try {
    const body = JSON.parse(bodyText) as OpenAIErrorBody;
    if (typeof body.error === 'string') message = body.error;
    else if (body.error) {
      message = body.error.message ?? '';
      code = body.error.code === null || body.error.code === undefined ? '' : String(body.error.code);
    }
  } catch {
    message = bodyText.slice(0, 200);
  }
  if (status === 400 && code === 'content_filter') {
    return new ProviderError('invalid_argument', `${provider} content filter: ${message}`, 'content_filter', status);
  }
  return classifyHttpStatus(provider, status, message, headers);
}
