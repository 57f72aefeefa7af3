import { BENCH_KEY, directClient, meshClient, openAiClient } from './clients.js';
import { cpuMicros, spawnSimulator, startBenchMesh } from './processes.js';
import { closedLoop, median, summarise, table } from './stats.js';

/**
 * `npm run bench:http`: the OpenAI-compatible HTTP surface against the gRPC edge, on one sealed
 * mesh, with the simulator direct as the floor. The same chat each time (HTTP/1.1 keep-alive
 * connections, one per request in flight, against one HTTP/2 channel); runs alternate between the
 * paths, each run starting with another, so that the machine's noise hits all alike. CPU is the edge process's, per request.
 */
const say = (s: string) => process.stdout.write(`${s}\n`);
const LEVELS = (process.env.BENCH_LEVELS ?? '1,16,64').split(',').map(Number);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const TOTAL = Number(process.env.BENCH_REQUESTS ?? 3000);

const sim = await spawnSimulator();
const bench = await startBenchMesh(sim.url);
const edgePid = bench.mesh.processes.get('edge')?.pid;
const paths = [
  ['simulator direct', directClient(sim.url), false],
  ['gRPC edge', meshClient(bench.mesh.addrs.edge), true],
  ['HTTP surface', openAiClient(`http://${bench.mesh.edgeHttpAddr}`, { model: 'chat', apiKey: BENCH_KEY }), true],
] as const;

try {
  for (const [, c] of paths) await closedLoop(500, 16, c.chat);
  const rows: (string | number)[][] = [];
  for (const level of LEVELS) {
    const total = level === 1 ? Math.min(TOTAL, 1500) : TOTAL;
    const results = paths.map(() => ({ rps: [] as number[], p50: [] as number[], p99: [] as number[], cpu: [] as number[] }));
    for (let run = 0; run < RUNS; run++) {
      // Each run starts with another path: no path always follows the same one.
      for (let k = 0; k < paths.length; k++) {
        const i = (run + k) % paths.length;
        const [, client, viaEdge] = paths[i]!;
        const before = cpuMicros(edgePid);
        const r = await closedLoop(total, level, client.chat);
        const s = summarise(r.latencies, r.elapsedMs);
        results[i]!.rps.push(s.rps);
        results[i]!.p50.push(s.p50);
        results[i]!.p99.push(s.p99);
        results[i]!.cpu.push(viaEdge ? (cpuMicros(edgePid) - before) / total : NaN);
      }
    }
    const [direct, grpc, http] = results.map((r) => ({ rps: median(r.rps), p50: median(r.p50), p99: median(r.p99), cpu: median(r.cpu) }));
    rows.push(['simulator direct', level, direct!.rps, direct!.p50, direct!.p99, '', '']);
    rows.push(['gRPC edge', level, grpc!.rps, grpc!.p50, grpc!.p99, grpc!.cpu, '']);
    rows.push([
      'HTTP surface',
      level,
      http!.rps,
      http!.p50,
      http!.p99,
      http!.cpu,
      `${(http!.p50 - grpc!.p50 >= 0 ? '+' : '−') + Math.abs(http!.p50 - grpc!.p50).toFixed(2)} ms p50, ${((http!.rps / grpc!.rps) * 100).toFixed(0)}% of req/s`,
    ]);
  }
  say(`\n## HTTP surface vs gRPC edge: unary chat (medians of ${RUNS} runs)\n`);
  say(table(['path', 'in flight', 'req/s', 'p50 ms', 'p99 ms', 'edge CPU µs / request', 'HTTP vs gRPC'], rows));

  const srows: (string | number)[][] = [];
  for (const [name, client] of paths) {
    const ttfts: number[] = [];
    const totals: number[] = [];
    const t0 = performance.now();
    await closedLoop(500, 1, async () => {
      const r = await client.stream();
      ttfts.push(r.ttft);
      totals.push(r.total);
    });
    const elapsed = performance.now() - t0;
    srows.push([name, summarise(ttfts, elapsed).p50, summarise(totals, elapsed).p50]);
  }
  say('\n## Streaming chat, one at a time (32 output tokens)\n');
  say(table(['path', 'TTFT p50 ms', 'total p50 ms'], srows));
} finally {
  for (const [, c] of paths) c.close();
  await bench.stop();
  sim.stop();
}
