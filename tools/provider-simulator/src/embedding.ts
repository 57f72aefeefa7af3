/**
 * Deterministic unit-length embedding vectors: the same text (and dimension count) always gives
 * the same vector. Seeded from an FNV-1a hash of the text, expanded with mulberry32.
 */
export function embedText(text: string, dimensions: number): Float32Array {
  let seed = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    seed ^= text.charCodeAt(i);
    seed = Math.imul(seed, 0x01000193);
  }
  const out = new Float32Array(dimensions);
  let norm = 0;
  let state = seed >>> 0;
  for (let i = 0; i < dimensions; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const v = ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
    out[i] = v;
    norm += v * v;
  }
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let i = 0; i < dimensions; i++) out[i] = (out[i] as number) * scale;
  return out;
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
