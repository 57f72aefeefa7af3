import { describe, expect, it } from 'vitest';
import { intentClassifierSchema } from '@llmgw/config';
import { silentLogger } from '@llmgw/logging';
import type { IntentMetrics } from '@llmgw/metrics';
import { IntentClassifier, type Embed } from './intent-classifier.js';

const config = () =>
  intentClassifierSchema.parse({
    embed_route: 'embed',
    tenant: 'platform',
    threshold: 0.8,
    intents: {
      billing: { examples: ['invoice', 'refund'], keywords: ['card'] },
      technical: { examples: ['error'], keywords: ['stack trace'] },
    },
  });

/** Texts map to fixed 2-d vectors; the calls are recorded. */
function embedder(vectors: Record<string, number[]>) {
  const calls: string[][] = [];
  const embed: Embed = async (_route, texts) => {
    calls.push(texts);
    return texts.map((t) => Float32Array.from(vectors[t] ?? [0, 0]));
  };
  return { embed, calls };
}

const VECTORS = { invoice: [1, 0], refund: [0.9, 0.1], error: [0, 1] };

function counted() {
  const seen: string[] = [];
  const metrics: IntentMetrics = { classified: (route, intent, source) => seen.push(`${route}/${intent}/${source}`), lowConfidence: (route) => seen.push(`${route}/low`) };
  return { metrics, seen };
}

describe('IntentClassifier', () => {
  it('gives the intent of the nearest exemplar at or above the threshold, with its cosine', async () => {
    const { metrics, seen } = counted();
    const classifier = new IntentClassifier({ logger: silentLogger(), metrics });
    const exemplars = embedder(VECTORS);
    const query = embedder({ 'my bill is wrong': [0.95, 0.05] });
    const got = await classifier.classify('support', config(), 'my bill is wrong', query.embed, exemplars.embed, 'acme');
    expect(got.intent).toBe('billing');
    expect(got.source).toBe('embedding');
    expect(got.score).toBeCloseTo(0.95 / Math.hypot(0.95, 0.05), 6);
    expect(exemplars.calls).toEqual([['invoice', 'refund', 'error']]);
    expect(seen).toEqual(['support/billing/embedding']);
  });

  it('lets a whole-word keyword decide below the threshold, and else gives no intent', async () => {
    const { metrics, seen } = counted();
    const classifier = new IntentClassifier({ logger: silentLogger(), metrics });
    const cfg = config();
    const exemplars = embedder(VECTORS);
    const query = embedder({ 'my card was declined': [0.6, 0.6], 'discard the draft': [0.6, 0.6], 'I saw a STACK   trace': [0.6, 0.6] });
    expect(await classifier.classify('support', cfg, 'my card was declined', query.embed, exemplars.embed, 'acme')).toEqual({ intent: 'billing', score: 1, source: 'keyword' });
    expect(await classifier.classify('support', cfg, 'I saw a STACK   trace', query.embed, exemplars.embed, 'acme')).toMatchObject({ intent: 'technical', source: 'keyword' });
    const none = await classifier.classify('support', cfg, 'discard the draft', query.embed, exemplars.embed, 'acme');
    expect(none).toMatchObject({ intent: '', source: 'none' });
    // Nearest is "refund" (0.9, 0.1), below the threshold of 0.8.
    expect(none.score).toBeCloseTo((0.6 * 0.9 + 0.6 * 0.1) / (Math.hypot(0.6, 0.6) * Math.hypot(0.9, 0.1)), 6);
    expect(seen.filter((s) => s.endsWith('/low'))).toHaveLength(3);
    expect(seen).toContain('support/none/none');
  });

  it('embeds exemplars once per config version and a text once per tenant', async () => {
    const classifier = new IntentClassifier({ logger: silentLogger() });
    const exemplars = embedder(VECTORS);
    const query = embedder({ refund: [0.9, 0.1] });
    const cfg = config();
    await classifier.classify('support', cfg, 'refund', query.embed, exemplars.embed, 'acme');
    await classifier.classify('support', cfg, 'refund', query.embed, exemplars.embed, 'acme');
    expect(exemplars.calls).toHaveLength(1);
    expect(query.calls).toHaveLength(1);
    await classifier.classify('support', cfg, 'refund', query.embed, exemplars.embed, 'globex');
    expect(query.calls).toHaveLength(2);
    // A reload brings a new config object: its exemplars are embedded again.
    await classifier.classify('support', config(), 'refund', query.embed, exemplars.embed, 'acme');
    expect(exemplars.calls).toHaveLength(2);
  });

  it('falls back to keywords when embedding fails, and tries the exemplars again next time', async () => {
    const classifier = new IntentClassifier({ logger: silentLogger() });
    const cfg = config();
    let failures = 1;
    const exemplars = embedder(VECTORS);
    const flaky: Embed = async (route, texts) => {
      if (failures-- > 0) throw new Error('embedding route unavailable');
      return exemplars.embed(route, texts);
    };
    const query = embedder({ 'card declined': [0.1, 0.9] });
    expect(await classifier.classify('support', cfg, 'card declined', query.embed, flaky, 'acme')).toEqual({ intent: 'billing', score: 1, source: 'keyword' });
    expect(await classifier.classify('support', cfg, 'card declined', query.embed, flaky, 'acme')).toMatchObject({ intent: 'technical', source: 'embedding' });
  });

  it('embeds only the first max_chars characters', async () => {
    const classifier = new IntentClassifier({ logger: silentLogger() });
    const query = embedder({});
    await classifier.classify('support', { ...config(), max_chars: 5 }, 'refund please', query.embed, embedder(VECTORS).embed, 'acme');
    expect(query.calls).toEqual([['refun']]);
  });
});
