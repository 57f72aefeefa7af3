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
 * - embeddings bill their input tokens; errors, `-hang`, `-drop` and count_tokens bill nothing.
 */

export interface SimulatorBillLine {
  requests: number;
  input_tokens: number;
  output_tokens: number;
}

export interface SimulatorBill {
  models: Record<string, SimulatorBillLine>;
  total: SimulatorBillLine;
}

const emptyLine = (): SimulatorBillLine => ({ requests: 0, input_tokens: 0, output_tokens: 0 });

/** Mutable lines behind `Simulator.bill()`. */
export class BillRecorder {
  private byModel = new Map<string, SimulatorBillLine>();

  charge(model: string, requests: number, inputTokens: number, outputTokens: number): void {
    let line = this.byModel.get(model);
    if (!line) this.byModel.set(model, (line = emptyLine()));
    line.requests += requests;
    line.input_tokens += inputTokens;
    line.output_tokens += outputTokens;
  }

  snapshot(): SimulatorBill {
    const total = emptyLine();
    const models: Record<string, SimulatorBillLine> = {};
    for (const [model, line] of this.byModel) {
      models[model] = { ...line };
      total.requests += line.requests;
      total.input_tokens += line.input_tokens;
      total.output_tokens += line.output_tokens;
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

  /** The request and its input tokens; charged once, when the simulator starts answering. */
  start(inputTokens: number): void {
    if (this.started) return;
    this.started = true;
    this.bill.charge(this.model, 1, inputTokens, 0);
  }

  /** Output tokens just generated (a stream chunk written, or a whole answer). */
  output(tokens: number): void {
    if (tokens > 0) this.bill.charge(this.model, 0, 0, tokens);
  }

  /** A complete answer: the request, its input and its output tokens. */
  complete(inputTokens: number, outputTokens: number): void {
    this.start(inputTokens);
    this.output(outputTokens);
  }
}
