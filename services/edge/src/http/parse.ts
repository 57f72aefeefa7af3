import type { z } from 'zod';
import { quoted } from '@llmgw/errors';
import { invalid } from '../validate.js';

/** `['messages', 0, 'content']` → `messages[0].content`, the pipeline's spelling of a field. */
function fieldOf(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out;
}

/** The body as `schema` types it; otherwise INVALID_ARGUMENT naming the first field at fault. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalid('body', 'must be a JSON object');
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (!issue) throw invalid('body', 'is not a valid request');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.slice(0, 5).map((k) => quoted(k)).join(', ');
    throw invalid(fieldOf(issue.path) || 'body', `unsupported parameter${issue.keys.length > 1 ? 's' : ''} ${keys}${issue.keys.length > 5 ? ', …' : ''}`);
  }
  // zod's messages name types and allowed values, never the input itself.
  throw invalid(fieldOf(issue.path) || 'body', issue.message.slice(0, 200));
}

/** A message content: a string, null, or an array of text parts (joined by newlines); images and audio are refused. */
export function textOfParts(content: unknown, field: string): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw invalid(field, 'must be a string or an array of text parts');
  const texts: string[] = [];
  content.forEach((part: unknown, i) => {
    const p = part as { type?: unknown; text?: unknown } | null;
    if (p === null || typeof p !== 'object') throw invalid(`${field}[${i}]`, 'must be an object');
    if (p.type !== 'text') throw invalid(`${field}[${i}].type`, `${typeof p.type === 'string' ? quoted(p.type) : 'this part'} is not supported; send text`);
    if (typeof p.text !== 'string') throw invalid(`${field}[${i}].text`, 'must be a string');
    texts.push(p.text);
  });
  return texts.join('\n');
}

/** A JSON value back to text for the normalised request; a value nested too deeply to serialise is refused. */
export function jsonText(value: unknown, field: string): string {
  try {
    return JSON.stringify(value);
  } catch {
    throw invalid(field, 'is nested too deeply');
  }
}
