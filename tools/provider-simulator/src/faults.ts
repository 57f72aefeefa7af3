/**
 * Fault injection, chosen per model name.
 *
 * Either explicitly through `SimulatorOptions.faults[model]`, or by a suffix convention in the
 * model name (so a YAML config can name a failing primary):
 *
 * | in the model name | effect                                                                  |
 * |-------------------|-------------------------------------------------------------------------|
 * | `-fail-NNN`       | answer with HTTP status NNN in the provider's error format               |
 * |                   | (429 carries `retry-after: 1`, OpenAI also `retry-after-ms: 1000`)       |
 * | `-hang`           | never answer; the request ends when the client disconnects              |
 * | `-dropmid`        | streams send a few chunks then the socket is destroyed (JSON: drop)     |
 * | `-drop`           | destroy the socket before responding                                    |
 * | `-slow-NNN`       | NNN ms extra latency before the first byte (combines with the others)   |
 * | `-slow-NNN-every-K` | the same, on the K-th, 2K-th, … request of the model name only: a  |
 * |                   | deterministic 1/K share of slow answers (a provider's latency tail)     |
 * | `-badjson`        | JSON answers come in a shape that matches no schema (`[[badjson]]` in   |
 * |                   | the last user turn does the same for one request)                       |
 */
export type FaultSpec =
  | { kind: 'status'; status: number; retryAfterS?: number }
  | { kind: 'hang' }
  | { kind: 'drop' }
  | { kind: 'drop-mid-stream'; afterChunks: number }
  /** `every`: only the every-th, 2·every-th, … request of the model (1-based, per model name) waits. */
  | { kind: 'latency'; ms: number; every?: number };

/** Number of stream events sent before a `-dropmid` model drops the connection. */
export const DEFAULT_DROP_AFTER_CHUNKS = 3;
/** `retry-after` seconds sent with a 429 when the spec does not say otherwise. */
export const DEFAULT_RETRY_AFTER_S = 1;

/** What the server does for one request once the faults of its model are combined. */
export interface FaultPlan {
  /** Extra latency before the first byte, in ms. */
  extraLatencyMs: number;
  /** The terminal fault, if any (status, hang, drop, drop-mid-stream). */
  fault?: Exclude<FaultSpec, { kind: 'latency' }>;
}

const FAIL_RE = /-fail-(\d{3})(?![0-9])/;
const SLOW_RE = /-slow-(\d+)(?:-every-(\d+))?/;
const HANG_RE = /-hang(?![a-z0-9])/i;
const DROPMID_RE = /-dropmid(?![a-z0-9])/i;
const DROP_RE = /-drop(?![a-z0-9])/i;

/** Parses the model-name suffix convention. Pure; returns [] for a normal model. */
export function faultsFromModelName(model: string): FaultSpec[] {
  if (!model.includes('-')) return [];
  const out: FaultSpec[] = [];
  const slow = SLOW_RE.exec(model);
  if (slow) out.push(slow[2] === undefined ? { kind: 'latency', ms: Number(slow[1]) } : { kind: 'latency', ms: Number(slow[1]), every: Number(slow[2]) });
  const fail = FAIL_RE.exec(model);
  if (fail) {
    const status = Number(fail[1]);
    if (status >= 400 && status <= 599) out.push({ kind: 'status', status });
  } else if (HANG_RE.test(model)) out.push({ kind: 'hang' });
  else if (DROPMID_RE.test(model)) out.push({ kind: 'drop-mid-stream', afterChunks: DEFAULT_DROP_AFTER_CHUNKS });
  else if (DROP_RE.test(model)) out.push({ kind: 'drop' });
  return out;
}

/**
 * Explicit `faults[model]` wins over the name convention. `nth` is the request's 1-based ordinal
 * among the requests of its model, which a latency with `every` hits when it is a multiple of it.
 */
export function planFaults(model: string, faults: Readonly<Record<string, FaultSpec>> | undefined, nth = 1): FaultPlan {
  const explicit = faults ? faults[model] : undefined;
  const specs = explicit ? [explicit] : faultsFromModelName(model);
  const plan: FaultPlan = { extraLatencyMs: 0 };
  for (const spec of specs) {
    if (spec.kind === 'latency') {
      if (spec.every === undefined || nth % Math.max(1, spec.every) === 0) plan.extraLatencyMs += Math.max(0, spec.ms);
    }
    else plan.fault ??= spec;
  }
  return plan;
}

/** Headers of a status fault: retry-after on 429 (default 1 s) or whenever `retryAfterS` is set. */
export function retryAfterSeconds(spec: { status: number; retryAfterS?: number }): number | undefined {
  if (spec.retryAfterS !== undefined) return spec.retryAfterS;
  return spec.status === 429 ? DEFAULT_RETRY_AFTER_S : undefined;
}
