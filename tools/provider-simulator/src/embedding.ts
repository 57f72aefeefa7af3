/**
 * Deterministic unit-length embedding vectors with a little meaning: the sum of one pseudo-random
 * direction per content word (lower-cased, crudely stemmed, stop words left out), so texts that
 * share words lie close by cosine and unrelated texts near orthogonal, as with a real model. The
 * same text (and dimension count) always gives the same vector; a text without content words gets
 * a direction of its own.
 */
export function embedText(text: string, dimensions: number): Float32Array {
  const out = new Float32Array(dimensions);
  const words = (text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((w) => !STOP_WORDS.has(w));
  for (const seed of words.length > 0 ? words.map((w) => fnv1a(stem(w))) : [fnv1a(text)]) addDirection(out, seed);
  let norm = 0;
  for (const v of out) norm += v * v;
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let i = 0; i < dimensions; i++) out[i] = (out[i] as number) * scale;
  return out;
}

const STOP_WORDS = new Set(
  'a an and are as at be been but by can could do does for from had has have how i if in into is it its me my no not of on or our so that the their them then there these they this to was we were what when where which who why will with would you your'.split(' '),
);

/** "charge", "charged", "charges", "charging" → "charg": enough for the simulator's purpose. */
function stem(word: string): string {
  for (const suffix of ['ing', 'ed', 'es', 's', 'e']) {
    if (word.length > suffix.length + 3 && word.endsWith(suffix)) return word.slice(0, -suffix.length);
  }
  return word;
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Adds the unit-free pseudo-random direction of `seed` (mulberry32) to `out`. */
function addDirection(out: Float32Array, seed: number): void {
  let state = seed;
  for (let i = 0; i < out.length; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (out[i] as number) + (((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5);
  }
}

/** OpenAI `encoding_format: 'base64'`: little-endian float32 bytes, base64-encoded. */
export function embeddingToBase64(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
}

/** Clamps a requested dimension count to something sane. */
export function dimensionsOr(requested: unknown, fallback: number): number {
  return typeof requested === 'number' && Number.isInteger(requested) && requested > 0 && requested <= 8192
    ? requested
    : fallback;
}
