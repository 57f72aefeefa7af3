import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVICE_NAMES } from '@llmgw/runtime';
import { grpcChatLoad, surfaceChatLoad } from './clients.js';
import { h2load, requireH2load, type LoadTarget } from './h2load.js';
import { spawnSimulator, startBenchMesh, startBenchMonolith } from './processes.js';
import { table } from './stats.js';

/**
 * `npm run bench -- profile [monolith] [http|grpc]`: a CPU profile of every service of the sealed
 * mesh (or of the one monolithic process) under load (64 in flight), and per service its CPU per
 * request and the profile's top entries by self time, by function and by package. The profiles stay in the printed folder for
 * Chrome DevTools or speedscope.
 */
const say = (s: string) => process.stdout.write(`${s}\n`);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 6000);
const TOP = Number(process.env.BENCH_PROFILE_TOP ?? 12);
const args = process.argv.slice(3);
const via = args.includes('grpc') ? 'grpc' : 'http';
const monolith = args.includes('monolith');

requireH2load();
const dir = mkdtempSync(join(tmpdir(), 'llmgw-profile-'));
const sim = await spawnSimulator();
const profileFlags = (name: string) => {
  mkdirSync(join(dir, name), { recursive: true });
  return ['--cpu-prof', '--cpu-prof-dir', join(dir, name)];
};
const bench = monolith ? await monolithBench() : await meshBench();
const target: LoadTarget = via === 'http' ? surfaceChatLoad(bench.httpAddr) : grpcChatLoad(bench.grpcAddr);
let requests = 0;
let loadStart = 0;
let loadEnd = 0;
try {
  const warm = await h2load(target, { kind: 'closed', inFlight: 64, requests: 1000 });
  loadStart = performance.now();
  const r = await h2load(target, { kind: 'closed', inFlight: 64, requests: REQUESTS });
  loadEnd = performance.now();
  if (warm.failed + r.failed > 0) throw new Error(`${warm.failed + r.failed} requests failed: ${JSON.stringify({ warm: warm.failures, load: r.failures })}`);
  requests = r.count;
} finally {
  // The profiles are written as each process exits.
  await bench.stop();
  sim.stop();
}
// Only the samples of the measured load count (not start-up, warm-up or drain): a profile ends
// when its process exits, just before stop() returns, which places the load's window in it.
const stopped = performance.now();
const window = { fromEndMicros: (stopped - loadStart) * 1000, toEndMicros: (stopped - loadEnd) * 1000 };

say(`\n## CPU profiles under load (${monolith ? 'monolithic mode, ' : ''}${via === 'http' ? 'HTTP surface' : 'gRPC edge'}, 64 in flight, ${requests} requests after a warm-up); profiles in ${dir}\n`);
const perService: (string | number)[][] = [];
for (const name of bench.profiled) {
  const file = readdirSync(join(dir, name)).find((f) => f.endsWith('.cpuprofile'));
  if (!file) continue;
  const p = summariseProfile(JSON.parse(readFileSync(join(dir, name, file), 'utf8')) as CpuProfile, window);
  perService.push([name, p.busyMicros / requests, p.gcShare * 100]);
  say(`\n### ${name}: ${(p.busyMicros / requests).toFixed(0)} µs CPU per request (sampled)\n`);
  say(table(['self %', 'function', 'where'], p.functions.slice(0, TOP).map(([share, fn, where]) => [(share * 100).toFixed(1), fn, where])));
  say('');
  say(table(['self %', 'package'], p.packages.slice(0, 8).map(([share, pkg]) => [(share * 100).toFixed(1), pkg])));
}
say('\n## Summary\n');
say(table(['service', 'CPU µs / request', 'GC %'], perService));

async function meshBench() {
  const b = await startBenchMesh(sim.url, sim.url, profileFlags);
  return { httpAddr: b.mesh.edgeHttpAddr, grpcAddr: b.mesh.addrs.edge, profiled: SERVICE_NAMES as readonly string[], stop: b.stop };
}

async function monolithBench() {
  const b = await startBenchMonolith(sim.url, profileFlags('monolith'));
  return { httpAddr: b.httpAddr, grpcAddr: b.grpcAddr, profiled: ['monolith'], stop: b.stop };
}

interface CpuProfile {
  endTime: number;
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time by function and by package within the window, as shares of the busy (non-idle) time. */
function summariseProfile(p: CpuProfile, w: { fromEndMicros: number; toEndMicros: number }) {
  const totalDelta = p.timeDeltas.reduce((a, b) => a + b, 0);
  const timeOf = new Map<number, number>();
  let at = p.endTime - totalDelta;
  p.samples.forEach((id, i) => {
    const delta = p.timeDeltas[i] ?? 0;
    at += delta;
    const fromEnd = p.endTime - at;
    if (fromEnd <= w.fromEndMicros && fromEnd >= w.toEndMicros) timeOf.set(id, (timeOf.get(id) ?? 0) + delta);
  });
  const byFunction = new Map<string, [string, string, number]>();
  const byPackage = new Map<string, number>();
  let busy = 0;
  let gc = 0;
  for (const n of p.nodes) {
    const t = timeOf.get(n.id) ?? 0;
    const { functionName, url, lineNumber } = n.callFrame;
    if (t === 0 || functionName === '(idle)') continue;
    busy += t;
    if (functionName === '(garbage collector)') gc += t;
    const where = url ? `${shortUrl(url)}:${lineNumber + 1}` : '';
    const key = `${functionName}@${where}`;
    const entry = byFunction.get(key) ?? [functionName || '(anonymous)', where, 0];
    entry[2] += t;
    byFunction.set(key, entry);
    const pkg = packageOf(url, functionName);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + t);
  }
  return {
    busyMicros: busy,
    gcShare: busy > 0 ? gc / busy : 0,
    functions: [...byFunction.values()].sort((a, b) => b[2] - a[2]).map(([fn, where, t]) => [t / busy, fn, where] as const),
    packages: [...byPackage].sort((a, b) => b[1] - a[1]).map(([pkg, t]) => [t / busy, pkg] as const),
  };
}

function shortUrl(url: string): string {
  return url.replace(/^file:\/\/.*\/node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/');
}

/** A registry package, a Node.js internal module family, our bundle, or V8's own entries. */
function packageOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return url.replace(/^node:(internal\/)?/, 'node:').split('/')[0]!;
  return url.includes('/dist/') ? 'ours (dist/)' : shortUrl(url);
}
