/**
 * The simulator's own bill, kept like a real provider's so that money tests can compare the
 * gateway's accountant with what the provider charged, exactly. Served as
 * `GET /_simulator/bill` (reset by `DELETE`) and by `Simulator.bill()`.
 *
 * Semantics (documented in README.md):
 * - lines are per model name as the request named it (body `model`, Azure deployment, Gemini path);
 * - the token counts are the ones the simulator reports in its own `usage`, so a completed
 *   request bills exactly its reported usage;
 * - a non-streaming answer is billed in full once it is produced, even when the client has
 *   already disconnected: like a provider, the simulator notices a disconnect only when it writes;
 * - a stream bills its input tokens when it starts (after the latency, client there or not: one
 *   gone during its time to first token bills exactly its input), then the output tokens of each
 *   chunk it actually writes, so a stream cut by the client or by `-dropmid` bills what was sent;
 * - embeddings bill their input tokens; errors, `-hang`, `-drop` and count_tokens bill nothing;
 * - as in the OpenTelemetry GenAI conventions, input_tokens counts every input token (Anthropic's
 *   wire input_tokens plus its cache reads and writes) and output_tokens every output token, the
 *   reasoning ones included; cached_input_tokens, cache_write_input_tokens and reasoning_tokens
 *   are their parts as the wire format reported them (`[[cached:N]]`, `[[cache_write:N]]`,
 *   `[[reasoning:N]]`); a stream bills its reasoning tokens when it starts, with its input.
 */

export interface SimulatorBillLine {
  requests: number;
  input_tokens: number;
  output_tokens: number;
  cached_input_tokens: number;
  cache_write_input_tokens: number;
  reasoning_tokens: number;
}

/** The parts of a request's usage its wire format reports (see UsageParts in reply.ts). */
export interface BilledParts {
  cachedTokens: number;
  cacheWriteTokens: number;
  reasoningTokens: number;
}

export const NO_PARTS: BilledParts = { cachedTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };

export interface SimulatorBill {
  models: Record<string, SimulatorBillLine>;
  total: SimulatorBillLine;
}

const emptyLine = (): SimulatorBillLine => ({ requests: 0, input_tokens: 0, output_tokens: 0, cached_input_tokens: 0, cache_write_input_tokens: 0, reasoning_tokens: 0 });
const LINE_KEYS = Object.keys(emptyLine()) as (keyof SimulatorBillLine)[];

/** Mutable lines behind `Simulator.bill()`. */
export class BillRecorder {
  private byModel = new Map<string, SimulatorBillLine>();

  charge(model: string, requests: number, inputTokens: number, outputTokens: number, parts: BilledParts = NO_PARTS): void {
    let line = this.byModel.get(model);
    if (!line) this.byModel.set(model, (line = emptyLine()));
    line.requests += requests;
    line.input_tokens += inputTokens;
    line.output_tokens += outputTokens;
    line.cached_input_tokens += parts.cachedTokens;
    line.cache_write_input_tokens += parts.cacheWriteTokens;
    line.reasoning_tokens += parts.reasoningTokens;
  }

  snapshot(): SimulatorBill {
    const total = emptyLine();
    const models: Record<string, SimulatorBillLine> = {};
    for (const [model, line] of this.byModel) {
      models[model] = { ...line };
      for (const k of LINE_KEYS) total[k] += line[k];
    }
    return { models, total };
  }

  reset(): void {
    this.byModel.clear();
  }
}

/**
 * One request's charges. They go to the bill as they happen (not when the request ends), so the
 * bill already holds a response's tokens by the time its client can read them.
 */
export class RequestMeter {
  private started = false;

  constructor(
    private readonly bill: BillRecorder,
    private readonly model: string,
  ) {}

  /**
   * The request, its input tokens and the reasoning that comes before any answer (`parts`);
   * charged once, when the simulator starts answering.
   */
  start(inputTokens: number, parts: BilledParts = NO_PARTS): void {
    if (this.started) return;
    this.started = true;
    this.bill.charge(this.model, 1, inputTokens, parts.reasoningTokens, parts);
  }

  /** Output tokens just generated (a stream chunk written, or a whole answer). */
  output(tokens: number): void {
    if (tokens > 0) this.bill.charge(this.model, 0, 0, tokens);
  }

  /** A complete answer: the request, its input and its output tokens (reasoning excluded: it is in `parts`). */
  complete(inputTokens: number, outputTokens: number, parts: BilledParts = NO_PARTS): void {
    this.start(inputTokens, parts);
    this.output(outputTokens);
  }
}
