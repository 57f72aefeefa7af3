import { describe, expect, it } from 'vitest';
import { embedText } from './embedding.js';

const cosine = (a: Float32Array, b: Float32Array) => a.reduce((sum, x, i) => sum + x * (b[i] as number), 0);

describe('embedText', () => {
  it('is deterministic and of unit length', () => {
    const v = embedText('Refund the double charge on my invoice', 256);
    expect(embedText('Refund the double charge on my invoice', 256)).toEqual(v);
    expect(cosine(v, v)).toBeCloseTo(1, 5);
  });

  it('puts texts that share content words closer than unrelated ones', () => {
    const invoice = embedText('Why was I charged twice on this invoice?', 512);
    const sameTopic = embedText('The invoice shows a double charge', 512);
    const unrelated = embedText('The server returns a timeout error after deploy', 512);
    expect(cosine(invoice, sameTopic)).toBeGreaterThan(0.4);
    expect(Math.abs(cosine(invoice, unrelated))).toBeLessThan(0.25);
  });

  it('gives a text without content words a direction of its own', () => {
    const a = embedText('?!', 64);
    const b = embedText('...', 64);
    expect(cosine(a, a)).toBeCloseTo(1, 5);
    expect(a).not.toEqual(b);
  });
});
