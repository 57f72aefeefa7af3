import type { IntentClassifierConfig } from '@llmgw/config';
import type { Logger } from '@llmgw/logging';
import type { IntentMetrics } from '@llmgw/metrics';

/** Vectors of the texts, in order, embedded through `route`. */
export type Embed = (route: string, texts: string[]) => Promise<Float32Array[]>;

export interface Classification {
  /** '' when no intent was sure. */
  intent: string;
  /** Cosine to the nearest exemplar; 1 for a keyword decision; 0 when nothing could be embedded. */
  score: number;
  source: 'embedding' | 'keyword' | 'none';
}

/** One row per exemplar: its intent, its vector and that vector's length. */
interface Exemplars {
  intents: string[];
  vectors: Float32Array[];
  norms: number[];
}

export interface IntentClassifierDeps {
  logger: Logger;
  metrics?: IntentMetrics;
  /** Query vectors kept (per tenant, route and text), least recently used dropped first. */
  maxCachedQueries?: number;
}

/**
 * A route's intent from its last user message: the intent of the nearest exemplar by cosine, if
 * at least the route's threshold; else the first intent with a keyword in the text; else none.
 * Exemplars are embedded once per config version (a reload brings new config objects, so the
 * cache is keyed by them); a failed embedding is retried on the next request, and keywords decide
 * meanwhile, so a classifier outage never fails a request.
 */
export class IntentClassifier {
  private readonly exemplars = new WeakMap<IntentClassifierConfig, Promise<Exemplars>>();
  private readonly keywords = new WeakMap<IntentClassifierConfig, [string, RegExp][]>();
  private readonly queries = new Map<string, Float32Array>();
  private readonly maxCachedQueries: number;

  constructor(private readonly deps: IntentClassifierDeps) {
    this.maxCachedQueries = deps.maxCachedQueries ?? 1_000;
  }

  /**
   * `embedQuery` bills the request's tenant, `embedExemplars` the classifier's; `scope` (the
   * tenant) keeps one tenant's cached vectors from answering another's.
   */
  async classify(route: string, cfg: IntentClassifierConfig, text: string, embedQuery: Embed, embedExemplars: Embed, scope: string): Promise<Classification> {
    const input = text.slice(0, cfg.max_chars);
    let nearest: { intent: string; score: number } | undefined;
    try {
      const [exemplars, query] = await Promise.all([this.exemplarsOf(cfg, embedExemplars), this.queryVector(`${scope}\u0000${cfg.embed_route}\u0000${input}`, () => embedQuery(cfg.embed_route, [input]))]);
      nearest = nearestOf(exemplars, query);
    } catch (err) {
      this.deps.logger.warn({ route, err: err instanceof Error ? err.message : String(err) }, 'intent embedding failed; keywords decide');
    }
    let result: Classification;
    if (nearest && nearest.score >= cfg.threshold) {
      result = { intent: nearest.intent, score: nearest.score, source: 'embedding' };
    } else {
      this.deps.metrics?.lowConfidence(route);
      const keyword = this.keywordsOf(cfg).find(([, pattern]) => pattern.test(input))?.[0];
      result = keyword ? { intent: keyword, score: 1, source: 'keyword' } : { intent: '', score: nearest?.score ?? 0, source: 'none' };
    }
    this.deps.metrics?.classified(route, result.intent || 'none', result.source);
    return result;
  }

  private exemplarsOf(cfg: IntentClassifierConfig, embed: Embed): Promise<Exemplars> {
    let pending = this.exemplars.get(cfg);
    if (!pending) {
      pending = embedExemplars(cfg, embed);
      this.exemplars.set(cfg, pending);
      pending.catch(() => this.exemplars.delete(cfg));
    }
    return pending;
  }

  private async queryVector(key: string, embed: () => Promise<Float32Array[]>): Promise<Float32Array> {
    const cached = this.queries.get(key);
    if (cached) {
      this.queries.delete(key);
      this.queries.set(key, cached);
      return cached;
    }
    const [vector] = await embed();
    if (!vector) throw new Error('the embedding route returned no vector');
    if (this.queries.size >= this.maxCachedQueries) this.queries.delete(this.queries.keys().next().value as string);
    this.queries.set(key, vector);
    return vector;
  }

  private keywordsOf(cfg: IntentClassifierConfig): [string, RegExp][] {
    let compiled = this.keywords.get(cfg);
    if (!compiled) {
      compiled = Object.entries(cfg.intents).flatMap(([intent, { keywords }]) => keywords.map((k): [string, RegExp] => [intent, wholeWords(k)]));
      this.keywords.set(cfg, compiled);
    }
    return compiled;
  }
}

/** Batches within the edge's limit of texts per embedding request. */
const EXEMPLAR_BATCH = 256;

async function embedExemplars(cfg: IntentClassifierConfig, embed: Embed): Promise<Exemplars> {
  const intents = Object.entries(cfg.intents).flatMap(([intent, { examples }]) => examples.map(() => intent));
  const texts = Object.values(cfg.intents).flatMap(({ examples }) => examples);
  const vectors: Float32Array[] = [];
  for (let i = 0; i < texts.length; i += EXEMPLAR_BATCH) {
    const batch = texts.slice(i, i + EXEMPLAR_BATCH);
    const got = await embed(cfg.embed_route, batch);
    if (got.length !== batch.length) throw new Error(`the embedding route returned ${got.length} vectors for ${batch.length} exemplars`);
    vectors.push(...got);
  }
  return { intents, vectors, norms: vectors.map(norm) };
}

function nearestOf(exemplars: Exemplars, query: Float32Array): { intent: string; score: number } | undefined {
  const queryNorm = norm(query);
  let best: { intent: string; score: number } | undefined;
  exemplars.vectors.forEach((v, i) => {
    const denominator = queryNorm * (exemplars.norms[i] as number);
    if (denominator === 0 || v.length !== query.length) return;
    let dot = 0;
    for (let k = 0; k < v.length; k++) dot += (v[k] as number) * (query[k] as number);
    const score = dot / denominator;
    if (!best || score > best.score) best = { intent: exemplars.intents[i] as string, score };
  });
  return best;
}

function norm(v: Float32Array): number {
  let sum = 0;
  for (const x of v) sum += x * x;
  return Math.sqrt(sum);
}

/** The keyword as whole words, any case: "card" is not found in "discard". */
function wholeWords(keyword: string): RegExp {
  const escaped = keyword.trim().replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\s+/g, '\\s+');
  return new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, 'iu');
}
