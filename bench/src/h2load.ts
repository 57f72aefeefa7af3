import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summarise, type Summary } from './stats.js';

/**
 * One load generator for every path (nghttp2's h2load, Debian's nghttp2-client): HTTP/1.1 with
 * a keep-alive connection per request in flight, or HTTP/2 streams on one connection (gRPC).
 * Latencies come from its per-request log, so percentiles are exact rather than its mean.
 */
export interface LoadTarget {
  url: string;
  /** HTTP/1.1 (the OpenAI-compatible paths) or HTTP/2 without TLS (gRPC). */
  protocol: 'h1' | 'h2c';
  headers: Record<string, string>;
  body: Buffer | string;
}

export type LoadShape =
  /** `inFlight` requests at all times until `requests` are done. */
  | { kind: 'closed'; inFlight: number; requests: number }
  /** A steady `rps` (a multiple of 100) for `seconds`, spread evenly over connections that each send 10 a second. */
  | { kind: 'paced'; rps: number; seconds: number };

export interface LoadResult extends Summary {
  failed: number;
  /** Failed requests by HTTP status (-1: no answer). */
  failures: Record<string, number>;
}

export function requireH2load(): void {
  if (spawnSync('sh', ['-c', 'command -v h2load'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('h2load is not on PATH: apt-get install nghttp2-client');
  }
}

export async function h2load(target: LoadTarget, shape: LoadShape): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'llmgw-h2load-'));
  try {
    const bodyFile = join(dir, 'body');
    const logFile = join(dir, 'log');
    writeFileSync(bodyFile, target.body);
    const args = ['-d', bodyFile, `--log-file=${logFile}`, ...Object.entries(target.headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`])];
    if (target.protocol === 'h1') args.push('--h1');
    if (shape.kind === 'closed') {
      // h1: a connection per request in flight; h2: one connection (a gRPC channel) carrying them all.
      args.push('-n', String(shape.requests), ...(target.protocol === 'h1' ? ['-c', String(shape.inFlight)] : ['-c', '1', '-m', String(shape.inFlight)]));
    } else {
      // 10 req/s per connection: a connection is free again long before its next request is due.
      // Connections start a tenth of them every 10 ms, so their requests interleave evenly instead
      // of arriving all at once every 100 ms (which would measure bursts, not a rate).
      const connections = Math.max(10, Math.round(shape.rps / 100) * 10);
      args.push('-n', String(Math.round(shape.rps * shape.seconds)), '-c', String(connections), '--rps', '10', '-r', String(connections / 10), '--rate-period', '10ms');
    }
    args.push(target.url);
    const t0 = performance.now();
    const { code, output } = await run('h2load', args);
    const elapsedMs = performance.now() - t0;
    if (code !== 0) throw new Error(`h2load exited with ${code}: ${output.slice(-500)}`);
    const latencies: number[] = [];
    let failed = 0;
    const failures: Record<string, number> = {};
    for (const line of readFileSync(logFile, 'utf8').split('\n')) {
      const [, status, micros] = line.split('\t');
      if (status === undefined || micros === undefined) continue;
      if (status !== '200') {
        failed++;
        failures[status] = (failures[status] ?? 0) + 1;
      } else latencies.push(Number(micros) / 1000);
    }
    // The run's own clock (h2load's "finished in"), not the process's, so start-up is not counted.
    const finished = /finished in ([\d.]+)(m?s)/.exec(output);
    const ms = finished ? Number(finished[1]) * (finished[2] === 's' ? 1000 : 1) : elapsedMs;
    return { ...summarise(latencies, ms), failed, failures };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output }));
  });
}

/** A unary gRPC call as h2load sends it: the length-prefixed message of gRPC's HTTP/2 framing. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}
