import { SERVICE_NAMES } from '@llmgw/runtime';
import { surfaceChatLoad } from './clients.js';
import { h2load, requireH2load } from './h2load.js';
import { cpuMicros, spawnSimulator, startBenchMesh, type BenchMesh } from './processes.js';
import { median, table } from './stats.js';

/**
 * `npm run bench -- mux`: the edge's reserve and execute calls over multiplexed streams against
 * one unary call each (EDGE_MULTIPLEXED_CALLS), two sealed meshes side by side on one simulator,
 * runs alternating. HTTP surface, h2load; CPU is the six services' per request.
 */
const say = (s: string) => process.stdout.write(`${s}\n`);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3000);

requireH2load();
const sim = await spawnSimulator();
const variants: [string, BenchMesh][] = [
  ['multiplexed streams', await startBenchMesh(sim.url, sim.url, undefined, { EDGE_MULTIPLEXED_CALLS: 'on' })],
  ['unary calls', await startBenchMesh(sim.url, sim.url, undefined, { EDGE_MULTIPLEXED_CALLS: 'off' })],
];
const target = (b: BenchMesh) => surfaceChatLoad(b.mesh.edgeHttpAddr);
const meshCpu = (b: BenchMesh) => SERVICE_NAMES.reduce((n, s) => n + cpuMicros(b.mesh.processes.get(s)?.pid), 0);

try {
  for (const [, b] of variants) await h2load(target(b), { kind: 'closed', inFlight: 16, requests: 1000 });
  const rows: (string | number)[][] = [];
  for (const inFlight of [1, 64]) {
    const results = variants.map(() => ({ rps: [] as number[], p50: [] as number[], cpu: [] as number[] }));
    for (let run = 0; run < RUNS; run++) {
      for (let k = 0; k < variants.length; k++) {
        const i = (run + k) % variants.length;
        const b = variants[i]![1];
        const before = meshCpu(b);
        const r = await h2load(target(b), { kind: 'closed', inFlight, requests: inFlight === 1 ? Math.min(REQUESTS, 1000) : REQUESTS });
        if (r.failed > 0) throw new Error(`${variants[i]![0]}: ${r.failed} failed`);
        results[i]!.rps.push(r.rps);
        results[i]!.p50.push(r.p50);
        results[i]!.cpu.push((meshCpu(b) - before) / r.count);
      }
    }
    variants.forEach(([name], i) => rows.push([name, inFlight, median(results[i]!.rps), median(results[i]!.p50), median(results[i]!.cpu)]));
  }
  say(`\n## Edge to quota and executor: multiplexed streams vs unary calls (HTTP surface, medians of ${RUNS} runs)\n`);
  say(table(['calls', 'in flight', 'req/s', 'p50 ms', 'six services CPU µs / request'], rows));
} finally {
  await Promise.all(variants.map(([, b]) => b.stop()));
  sim.stop();
}
