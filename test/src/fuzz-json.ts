import type { Rng } from './fuzz-rng.js';

/** One HTTP endpoint of the edge with valid bodies to mutate. */
export interface JsonTarget {
  path: string;
  /** Headers besides the key (the Anthropic SDK's version header, say). */
  headers: Record<string, string>;
  seeds: unknown[];
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Names the surfaces know, so that mutations reach branches a random string would not. */
const WORDS = [
  'system', 'developer', 'user', 'assistant', 'tool', 'function', 'text', 'image_url', 'tool_use', 'tool_result', 'json_schema', 'json_object',
  'auto', 'none', 'required', 'any', 'chat', 'fallback', 'all-dead', 'claude', 'small-fast', 'embeddings', 'gpt-9', 'base64', 'float',
  'summarization', 'premium', 'batch', 'high', '[[tool]]', '[[tokens:3]]', '[[refuse]]', '',
];

/** Values that break parsers: extremes of every JSON type. */
function hostileValue(rng: Rng): Json {
  switch (rng.int(14)) {
    case 0: return null;
    case 1: return rng.chance(0.5);
    case 2: return rng.pick([-1, 0, 1, 2 ** 31, 2 ** 53 + 1, -(2 ** 63), 1e308, -1e-308, 0.5, 3.7]);
    case 3: return rng.pick(WORDS);
    case 4: return 'x'.repeat(rng.pick([1, 65, 257, 4_097, 70_000]));
    case 5: return rng.pick(['\u0000', '\ud800', '\u202e', '😀'.repeat(100), '{"a":', '</script>', '\n\r\t']);
    case 6: return [];
    case 7: return {};
    case 8: return `${NESTED}${rng.pick([10, 1_000, 100_000])}:${rng.pick(['[', '{'])}`;
    case 9: return Array.from({ length: rng.pick([2, 100, 3_000]) }, () => rng.pick(WORDS));
    case 10: return { type: rng.pick(WORDS), text: rng.pick(WORDS) };
    case 11: return { role: rng.pick(WORDS), content: rng.pick(WORDS) };
    case 12: return rng.int(1_000_000);
    default: return { [rng.pick(WORDS) || 'k']: rng.pick(WORDS) };
  }
}

/**
 * Deep nesting is written as text: JSON.stringify (and structuredClone) overflow the stack at a
 * depth the parsers under test must survive. A string value `NESTED<depth>:<[ or {>` is replaced.
 */
const NESTED = '\u0001nested:';
const NESTED_RE = /"\\u0001nested:(\d+):([[{])"/g;

function nestedText(depth: number, open: string): string {
  return open === '[' ? `${'['.repeat(depth)}1${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** Every container in the tree with the key or index of each child. */
type Slot = { parent: Json[] | { [k: string]: Json }; key: string | number };

function slots(v: Json, out: Slot[] = [], depth = 0): Slot[] {
  if (depth > 12 || v === null || typeof v !== 'object') return out;
  const children: [string | number, Json][] = Array.isArray(v) ? v.map((c, i) => [i, c]) : Object.entries(v);
  for (const [key, child] of children) {
    out.push({ parent: v, key });
    slots(child, out, depth + 1);
  }
  return out;
}

/** A seed body changed in one to three places, sometimes cut or corrupted as bytes. */
export function mutateJson(seed: unknown, rng: Rng): string {
  const tree = structuredClone(seed) as Json;
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const all = slots(tree);
    if (all.length === 0) break;
    const { parent, key } = rng.pick(all);
    const op = rng.int(5);
    if (Array.isArray(parent)) {
      const i = key as number;
      if (op === 0) parent.splice(i, 1);
      else if (op === 1) parent.push(structuredClone(parent[i] ?? null));
      else parent[i] = hostileValue(rng);
    } else {
      const k = key as string;
      if (op === 0) delete parent[k];
      else if (op === 1) parent[rng.pick(WORDS) || 'extra'] = hostileValue(rng);
      else parent[k] = hostileValue(rng);
    }
  }
  let text = JSON.stringify(tree).replace(NESTED_RE, (_m, depth: string, open: string) => nestedText(Number(depth), open));
  if (rng.chance(0.05)) text = text.slice(0, rng.int(text.length));
  else if (rng.chance(0.05)) {
    const i = rng.int(text.length + 1);
    text = text.slice(0, i) + String.fromCharCode(rng.int(128)) + text.slice(i);
  }
  return text;
}
