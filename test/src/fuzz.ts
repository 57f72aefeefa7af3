import { Client, Metadata, status, type ClientReadableStream } from '@grpc/grpc-js';
import { PLAINTEXT, type ChannelLink } from '@llmgw/grpc';
import { mutateFrame } from './fuzz-mutate.js';
import { frameRng, type Rng } from './fuzz-rng.js';

/*
 * Sends mutated protobuf frames, raw bytes on the wire (identity serializers), to every method
 * of every target, with bounded concurrency over several channels per target, and reports every
 * call that ended with a status the caller must never see.
 */

export interface FuzzMethod {
  /** Full path: /package.Service/Method. */
  path: string;
  stream: boolean;
  /** Valid requests, encoded. */
  seeds: Buffer[];
  /** Relative share of the frames (default 1). */
  weight?: number;
  /**
   * True when the frame asks for a budget of its own so short (a timeout_ms of a few ms) that
   * DEADLINE_EXCEEDED is the right answer; DEADLINE_EXCEEDED is a failure for any other frame.
   */
  ownBudget?: (frame: Buffer) => boolean;
}

export interface FuzzTarget {
  /** The service (edge, auth, ...): the key of `credentials`. */
  name: string;
  addr: string;
  methods: FuzzMethod[];
}

export interface FuzzOptions {
  seed: number;
  frames: number;
  /** Calls in flight at once, over all targets. */
  concurrency: number;
  /** Channels (HTTP/2 connections) per target. */
  channelsPerTarget?: number;
  deadlineMs?: number;
  /** Credentials and channel options to one target (mTLS: a mesh identity's link); plaintext unless given. */
  link?: (target: FuzzTarget) => ChannelLink;
  /** Metadata of frame `index` to `target`; none unless given. */
  metadata?: (rng: Rng, target: FuzzTarget, method: FuzzMethod) => Metadata;
  /** A stream is cancelled after this many messages (default 3). */
  cancelStreamAfter?: number;
  /** Called after every `progressEvery` frames (default 10,000) with the count so far. */
  onProgress?: (done: number, failures: number, elapsedMs: number) => void;
  progressEvery?: number;
}

export interface FuzzCall {
  index: number;
  target: string;
  path: string;
  ops: string[];
  frame: Buffer;
  /** The gRPC status, or HUNG. */
  code: number;
  details: string;
  ms: number;
}

export interface FuzzReport {
  seed: number;
  frames: number;
  durationMs: number;
  /** Count per "target path code". */
  codes: Map<string, number>;
  /** The first status message seen per "target path code". */
  samples: Map<string, string>;
  /** Calls whose status is one the caller must never see. */
  failures: FuzzCall[];
  slowest: FuzzCall[];
}

/** Not a gRPC code: the call had no status HANG_GRACE_MS after its deadline. */
export const HUNG = -1;
const HANG_GRACE_MS = 5_000;

/** Outcomes a caller must never get, whatever it sends. */
export const FORBIDDEN_CODES: ReadonlySet<number> = new Set([status.INTERNAL, status.UNKNOWN, status.DEADLINE_EXCEEDED, HUNG]);

const identity = (b: Buffer): Buffer => b;

interface Plan {
  index: number;
  target: FuzzTarget;
  method: FuzzMethod;
  frame: Buffer;
  ops: string[];
  metadata: Metadata;
}

/** The frame `index` of `seed`: same target, method, bytes and metadata on every run. */
export function planFrame(targets: readonly FuzzTarget[], opts: FuzzOptions, index: number): Plan {
  const rng = frameRng(opts.seed, index);
  const methods = targets.flatMap((target) => target.methods.map((method) => ({ target, method })));
  const total = methods.reduce((s, m) => s + (m.method.weight ?? 1), 0);
  let r = rng.next() * total;
  let chosen = methods[methods.length - 1];
  for (const m of methods) {
    r -= m.method.weight ?? 1;
    if (r < 0) {
      chosen = m;
      break;
    }
  }
  if (!chosen) throw new Error('no methods to fuzz');
  const { target, method } = chosen;
  // Mostly this method's own seeds; sometimes another method's message (type confusion); rarely unmutated.
  const donor = rng.chance(0.05) ? rng.pick(methods).method : method;
  const seed = rng.pick(donor.seeds);
  const mutated = rng.chance(0.02) ? { frame: seed, ops: ['unmutated'] } : mutateFrame(rng, seed);
  if (donor !== method) mutated.ops.unshift(`seed-of ${donor.path}`);
  const metadata = opts.metadata?.(rng, target, method) ?? new Metadata();
  return { index, target, method, frame: mutated.frame, ops: mutated.ops, metadata };
}

export async function runFuzz(targets: readonly FuzzTarget[], opts: FuzzOptions): Promise<FuzzReport> {
  const channels = opts.channelsPerTarget ?? 2;
  const deadlineMs = opts.deadlineMs ?? 10_000;
  const cancelAfter = opts.cancelStreamAfter ?? 3;
  const clients = new Map<string, Client[]>();
  for (const t of targets) {
    const link = opts.link?.(t) ?? PLAINTEXT.channelTo('');
    // A local subchannel pool per client: each is a connection of its own, not a shared one.
    clients.set(t.name, Array.from({ length: channels }, (_, i) => new Client(t.addr, link.credentials, { ...link.options, 'grpc.use_local_subchannel_pool': 1, 'fuzz.channel': i, 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 })));
  }
  const codes = new Map<string, number>();
  const samples = new Map<string, string>();
  const failures: FuzzCall[] = [];
  const slowest: FuzzCall[] = [];
  const started = performance.now();
  let next = 0;
  let done = 0;
  const progressEvery = opts.progressEvery ?? 10_000;

  const callOnce = (p: Plan): Promise<FuzzCall> => {
    const pool = clients.get(p.target.name) ?? [];
    const client = pool[p.index % pool.length];
    if (!client) throw new Error(`no client for ${p.target.name}`);
    const t0 = performance.now();
    const done = (code: number, details: string): FuzzCall => ({ index: p.index, target: p.target.name, path: p.method.path, ops: p.ops, frame: p.frame, code, details, ms: performance.now() - t0 });
    const deadline = Date.now() + deadlineMs;
    return new Promise((resolve) => {
      let settled = false;
      let cancel = (): void => undefined;
      // A call with no status well after its deadline is a hang: reported, and cancelled.
      const watchdog = setTimeout(() => {
        finish(HUNG, `no status ${HANG_GRACE_MS} ms after the deadline`);
        cancel();
      }, deadlineMs + HANG_GRACE_MS);
      const finish = (code: number, details: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(watchdog);
        resolve(done(code, details));
      };
      if (!p.method.stream) {
        const call = client.makeUnaryRequest(p.method.path, identity, identity, p.frame, p.metadata, { deadline }, (err) => {
          if (err) finish(err.code, err.details);
          else finish(status.OK, '');
        });
        cancel = () => call.cancel();
        return;
      }
      const call: ClientReadableStream<Buffer> = client.makeServerStreamRequest(p.method.path, identity, identity, p.frame, p.metadata, { deadline });
      cancel = () => call.cancel();
      let received = 0;
      let cancelled = false;
      call.on('data', () => {
        received++;
        if (received >= cancelAfter && !cancelled) {
          cancelled = true;
          call.cancel();
        }
      });
      call.on('error', () => undefined); // the status event below carries the outcome
      call.on('status', (st: { code: status; details: string }) => finish(st.code, st.details));
    });
  };

  const inFlight = new Map<number, { path: string; since: number }>();
  let lastDone = -1;
  // Diagnostics: when nothing finished for 5 s, say what is in flight.
  const stall = setInterval(() => {
    if (done === lastDone) console.log(`fuzz: stalled at ${done}; in flight: ${[...inFlight].slice(0, 8).map(([i, f]) => `#${i} ${f.path} ${((performance.now() - f.since) / 1000).toFixed(0)} s`).join(', ')}`);
    lastDone = done;
  }, 5_000);
  stall.unref();
  const worker = async (): Promise<void> => {
    while (next < opts.frames) {
      const p = planFrame(targets, opts, next++);
      inFlight.set(p.index, { path: p.method.path, since: performance.now() });
      const r = await callOnce(p);
      inFlight.delete(p.index);
      const key = `${r.target} ${r.path} ${codeName(r.code)}`;
      codes.set(key, (codes.get(key) ?? 0) + 1);
      if (!samples.has(key)) samples.set(key, r.details.slice(0, 160));
      if (FORBIDDEN_CODES.has(r.code) && !(r.code === status.DEADLINE_EXCEEDED && p.method.ownBudget?.(p.frame))) failures.push(r);
      if (++done % progressEvery === 0) opts.onProgress?.(done, failures.length, performance.now() - started);
      if (slowest.length < 5 || r.ms > (slowest[slowest.length - 1]?.ms ?? 0)) {
        slowest.push(r);
        slowest.sort((a, b) => b.ms - a.ms);
        slowest.length = Math.min(slowest.length, 5);
      }
    }
  };
  // grpc-js captures a stack for every call and builds an Error for every failed one; under
  // vitest each stack is source-mapped. Nine calls in ten fail here, on purpose: no stacks.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
    clearInterval(stall);
    for (const pool of clients.values()) for (const c of pool) c.close();
  }
  return { seed: opts.seed, frames: opts.frames, durationMs: performance.now() - started, codes, samples, failures, slowest };
}

/** A frame as hex for the report, cut to `max` bytes. */
export function hexOf(frame: Buffer, max = 96): string {
  const hex = frame.subarray(0, max).toString('hex');
  return frame.length > max ? `${hex}… (${frame.length} bytes)` : `${hex} (${frame.length} bytes)`;
}

/** One line per failing call (the first `max`), enough to replay it: seed, index, ops, frame. */
export function describeFailures(report: FuzzReport, max = 20): string {
  const lines = report.failures.slice(0, max).map(
    (f) => `#${f.index} ${f.target} ${f.path} → ${codeName(f.code)} "${f.details}" after ${f.ms.toFixed(0)} ms; ops=[${f.ops.join(', ')}]; frame=${hexOf(f.frame)}`,
  );
  if (report.failures.length > max) lines.push(`… and ${report.failures.length - max} more`);
  return `FUZZ_SEED=${report.seed}: ${report.failures.length} forbidden statuses\n${lines.join('\n')}`;
}

export function codeName(code: number): string {
  return code === HUNG ? 'HUNG' : (status[code] ?? String(code));
}
