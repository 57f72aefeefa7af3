import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { NO_PARTS, type BilledParts, type RequestMeter } from './bill.js';

/** Largest request body accepted (413 above). */
export const MAX_BODY_BYTES = 32 * 1024 * 1024;

export class BodyTooLargeError extends Error {}

export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new BodyTooLargeError(`request body larger than ${limit} bytes`));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
    req.once('error', reject);
    req.once('close', () => {
      if (!req.complete) reject(new Error('client disconnected before the request body was complete'));
    });
  });
}

/** JSON with content-length so that keep-alive connections are reused. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: OutgoingHttpHeaders): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export function isClosed(res: ServerResponse): boolean {
  return res.destroyed || res.writableEnded;
}

/** Waits `ms`, or less if the response closes first (client disconnect). */
export function sleep(ms: number, res: ServerResponse): Promise<void> {
  if (ms <= 0 || isClosed(res)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      res.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    res.once('close', done);
  });
}

function waitDrain(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

export interface StreamOptions {
  /** Delay between two stream events. */
  chunkDelayMs: number;
  /** Destroy the socket after this many events (and never send the final one). */
  dropAfterChunks?: number | undefined;
}

/**
 * Writes server-sent events with backpressure (awaits 'drain' when `write` returns false) and
 * the drop-mid-stream fault. `send` resolves to false once the client is gone. Bills the input
 * tokens at `start` and the output tokens of each event it actually writes.
 */
export class SseWriter {
  private sent = 0;
  private lastFlush: Promise<void> = Promise.resolve();

  constructor(
    private readonly res: ServerResponse,
    private readonly opts: StreamOptions,
    private readonly meter: RequestMeter,
  ) {}

  /** The input was processed (and the reasoning done) even if the client has gone: it is billed either way. */
  start(inputTokens: number, headers?: OutgoingHttpHeaders, parts: BilledParts = NO_PARTS): void {
    this.meter.start(inputTokens, parts);
    if (isClosed(this.res)) return;
    this.res.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
    });
  }

  /** `outputTokens`: the generated tokens this event carries, billed once it is written. */
  async send(frame: string, outputTokens = 0): Promise<boolean> {
    if (isClosed(this.res)) return false;
    const drop = this.opts.dropAfterChunks;
    if (drop !== undefined && this.sent >= drop) {
      await this.drop();
      return false;
    }
    if (this.sent > 0 && this.opts.chunkDelayMs > 0) {
      await sleep(this.opts.chunkDelayMs, this.res);
      if (isClosed(this.res)) return false;
    }
    this.sent++;
    this.meter.output(outputTokens);
    let ok: boolean;
    if (drop !== undefined) {
      let flushed!: () => void;
      this.lastFlush = new Promise((resolve) => (flushed = resolve));
      ok = this.res.write(frame, () => flushed());
    } else {
      ok = this.res.write(frame);
    }
    if (!ok) await waitDrain(this.res);
    return !isClosed(this.res);
  }

  /** Sends the terminal event and ends the response; with drop-mid-stream, drops instead. */
  async finish(frame?: string, outputTokens = 0): Promise<void> {
    if (isClosed(this.res)) return;
    if (this.opts.dropAfterChunks !== undefined) {
      await this.drop();
      return;
    }
    if (frame !== undefined && !(await this.send(frame, outputTokens))) return;
    this.res.end();
  }

  private async drop(): Promise<void> {
    await this.lastFlush;
    this.res.socket?.destroy();
    this.res.destroy();
  }
}

/** Per-simulator id sequence: deterministic ids such as `chatcmpl-sim000001`. */
export class IdSequence {
  private n = 0;
  next(prefix: string): string {
    this.n++;
    return `${prefix}sim${this.n.toString().padStart(6, '0')}`;
  }
}
