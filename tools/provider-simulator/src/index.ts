import type { AddressInfo } from 'node:net';
import { BillRecorder, type SimulatorBill } from './bill.js';
import type { FaultSpec } from './faults.js';
import { StatsRecorder, createSimulatorServer, type ReceivedRequest, type SimulatorStats } from './server.js';

export type { FaultSpec } from './faults.js';
export { faultsFromModelName, planFaults } from './faults.js';
export type { ReceivedRequest, SimulatorStats } from './server.js';
export type { SimulatorBill, SimulatorBillLine } from './bill.js';
export { LONG_REPLY_TOKENS, PER_MESSAGE_TOKEN_OVERHEAD, REPLY_PRIMING_TOKENS, buildReply, countPromptTokens, countTokens } from './reply.js';
export type { Reply, ReplyRequest, ToolSpec } from './reply.js';
export { BAD_KEY } from './request-context.js';

export interface SimulatorOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 = a free port. */
  port?: number;
  /** Base latency before the first byte of every response, in ms. Default 0. */
  latencyMs?: number;
  /** Delay between two streamed events, in ms. Default 0. */
  streamChunkDelayMs?: number;
  /** Faults per model name; wins over the model-name suffix convention. */
  faults?: Record<string, FaultSpec>;
}

export interface Simulator {
  /** Base URL, e.g. `http://127.0.0.1:50060` (no trailing slash). */
  url: string;
  port: number;
  stats(): SimulatorStats;
  /** Clears the stats and the received bodies. */
  resetStats(): void;
  /** The bodies of the last requests that named a model (at most RECEIVED_KEPT, newest last), as parsed. */
  received(): ReceivedRequest[];
  /**
   * What the simulator billed, per model, as a provider would (semantics in bill.ts and the
   * README); also served as `GET /_simulator/bill`.
   */
  bill(): SimulatorBill;
  /** Empties the bill; also `DELETE /_simulator/bill`. */
  resetBill(): void;
  /** Stops listening, destroys every open connection (hung requests included) and waits until none is open. */
  close(): Promise<void>;
}

/** Starts the provider simulator (OpenAI, Azure OpenAI, Anthropic and Gemini wire formats). */
export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const host = opts.host ?? '127.0.0.1';
  const stats = new StatsRecorder();
  const bill = new BillRecorder();
  const server = createSimulatorServer(
    { latencyMs: opts.latencyMs ?? 0, streamChunkDelayMs: opts.streamChunkDelayMs ?? 0, faults: opts.faults },
    stats,
    bill,
  );
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 35_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    stats: () => stats.snapshot(),
    resetStats: () => stats.reset(),
    received: () => stats.received(),
    bill: () => bill.snapshot(),
    resetBill: () => bill.reset(),
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => stats.whenIdle());
      return closing;
    },
  };
}
