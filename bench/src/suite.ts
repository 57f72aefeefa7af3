import { meshTls, meshTlsFilesIn } from '@llmgw/grpc';
import { SERVICE_NAMES } from '@llmgw/runtime';
import { directClient, meshClient } from './clients.js';
import { measureHopFloor } from './hop-floor.js';
import { measureHops } from './hops.js';
import { cpuMicros, rssMiB, spawnSimulator, startBenchMesh, startBenchMonolith } from './processes.js';
import { runQuotaBench } from './quota-bench.js';
import { closedLoop, median, summarise, table, type Summary } from './stats.js';

/**
 * `npm run bench`: the mesh in microservices mode on this machine (sealed with mutual TLS, as
 * `npm start` runs it; `npm run bench:tls` compares with plaintext), against the simulator, and the
 * simulator alone as the baseline. Prints markdown tables. Numbers are medians of the runs; the
 * machine is shared, so read ratios rather than absolutes.
 */
const say = (s: string) => process.stdout.write(`${s}\n`);
const UNARY_LEVELS = [1, 16, 64];
const STREAM_LEVELS = [1, 16, 64];
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const UNARY_TOTAL = Number(process.env.BENCH_REQUESTS ?? 3000);

const sim = await spawnSimulator();
const slowSim = await spawnSimulator({ SIM_STREAM_CHUNK_DELAY_MS: '40' });
const bench = await startBenchMesh(sim.url, slowSim.url);
const { mesh, redis, nats } = bench;
const asEdge = meshTls(meshTlsFilesIn(bench.pki.dirOf('edge')), 60_000);
const direct = directClient(sim.url);
const viaMesh = meshClient(mesh.addrs.edge);

try {
  // Warm-up: JIT, connection pools, Lua script cache.
  await closedLoop(500, 16, viaMesh.chat);
  await closedLoop(500, 16, direct.chat);

  say('\n## One gRPC hop on this machine (health check to the router process)\n');
  const floor = await measureHopFloor(mesh.addrs.router, asEdge.channelTo('router'));
  say(
    table(
      ['receiver', 'p50 ms', 'p95 ms', 'p99 ms'],
      [
        ['busy (calls back to back)', floor.hot.p50, floor.hot.p95, floor.hot.p99],
        ['idle 3 ms before each call', floor.idle.p50, floor.idle.p95, floor.idle.p99],
      ],
    ),
  );

  say('\n## Each hop on its own, one call at a time\n');
  const hops = await measureHops(mesh.addrs, asEdge, direct.chat, viaMesh.chat);
  say(table(['call', 'p50 ms', 'p95 ms', 'p99 ms'], hops.map(([name, s]) => [name, s.p50, s.p95, s.p99])));

  say('\n## Unary chat: direct to the simulator vs through the mesh\n');
  const rows: (string | number)[][] = [];
  const cpuRows: (string | number)[][] = [];
  const pids: [string, number | undefined][] = [
    ...SERVICE_NAMES.map((n) => [n, mesh.processes.get(n)?.pid] as [string, number | undefined]),
    ['provider-simulator', sim.process.pid],
    ['redis-server', redis.process.pid],
    ['nats-server', nats.process.pid],
    ['bench client', process.pid],
  ];
  for (const c of UNARY_LEVELS) {
    const total = c === 1 ? Math.min(UNARY_TOTAL, 1500) : UNARY_TOTAL;
    const d: Summary[] = [];
    const m: Summary[] = [];
    for (let run = 0; run < RUNS; run++) {
      const dr = await closedLoop(total, c, direct.chat);
      d.push(summarise(dr.latencies, dr.elapsedMs));
      const cpuBefore = pids.map(([, pid]) => cpuMicros(pid));
      const mr = await closedLoop(total, c, viaMesh.chat);
      m.push(summarise(mr.latencies, mr.elapsedMs));
      if (c === UNARY_LEVELS.at(-1) && run === RUNS - 1) {
        pids.forEach(([name, pid], i) => cpuRows.push([name, (cpuMicros(pid) - cpuBefore[i]!) / total]));
      }
    }
    const med = (xs: typeof d, k: 'rps' | 'p50' | 'p95' | 'p99') => median(xs.map((x) => x[k]));
    rows.push(['direct', c, med(d, 'rps'), med(d, 'p50'), med(d, 'p95'), med(d, 'p99'), '']);
    rows.push(['mesh', c, med(m, 'rps'), med(m, 'p50'), med(m, 'p95'), med(m, 'p99'), med(m, 'p50') - med(d, 'p50')]);
  }
  say(table(['path', 'in flight', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'added p50 ms'], rows));
  say(`\nCPU per request through the mesh at ${UNARY_LEVELS.at(-1)} in flight (last run):\n`);
  say(table(['process', 'CPU µs / request'], cpuRows));

  say('\n## Streaming chat (32 output tokens): time to first token and total\n');
  const srows: (string | number)[][] = [];
  for (const c of STREAM_LEVELS) {
    const total = c === 1 ? 500 : 1500;
    for (const [name, fn] of [['direct', direct.stream], ['mesh', () => viaMesh.stream()]] as const) {
      const ttfts: number[] = [];
      const totals: number[] = [];
      const t0 = performance.now();
      await closedLoop(total, c, async () => {
        const r = await fn();
        ttfts.push(r.ttft);
        totals.push(r.total);
      });
      const elapsed = performance.now() - t0;
      const t = summarise(ttfts, elapsed);
      const all = summarise(totals, elapsed);
      srows.push([name, c, t.rps, t.p50, t.p99, all.p50, all.p99]);
    }
  }
  say(table(['path', 'in flight', 'streams/s', 'TTFT p50 ms', 'TTFT p99 ms', 'total p50 ms', 'total p99 ms'], srows));

  say('\n## 200 slow streams open at once: provider-executor memory\n');
  const executorPid = mesh.processes.get('provider-executor')?.pid;
  const before = rssMiB(executorPid, 'VmRSS');
  const samples: number[] = [];
  const sampler = setInterval(() => samples.push(rssMiB(executorPid, 'VmRSS')), 250);
  const streams = await Promise.allSettled(
    Array.from({ length: 200 }, () => viaMesh.stream('slow-stream', 'Tell me a long story. [[long]]', 1024)),
  );
  clearInterval(sampler);
  const ok = streams.filter((s) => s.status === 'fulfilled').length;
  const durations = streams.flatMap((s) => (s.status === 'fulfilled' ? [s.value.total] : []));
  say(
    table(
      ['streams', 'completed', 'median stream ms', 'executor RSS before MiB', 'max RSS while open MiB', 'RSS after MiB'],
      [[200, ok, median(durations), before, Math.max(...samples), rssMiB(executorPid, 'VmRSS')]],
    ),
  );

  say('\n## Peak RSS per process (VmHWM)\n');
  say(
    table(
      ['process', 'peak RSS MiB'],
      [
        ...SERVICE_NAMES.map((n) => [n, rssMiB(mesh.processes.get(n)?.pid, 'VmHWM')]),
        ['provider-simulator', rssMiB(sim.process.pid, 'VmHWM')],
        ['redis-server', rssMiB(redis.process.pid, 'VmHWM')],
        ['nats-server', rssMiB(nats.process.pid, 'VmHWM')],
      ],
    ),
  );
} finally {
  direct.close();
  viaMesh.close();
  await bench.stop();
  sim.stop();
  slowSim.stop();
}

say('\n## Monolithic mode: the six services in one process (in-memory stores, gRPC between them)\n');
say(table(['path', 'in flight', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms'], await benchMonolith()));

say('\n## Quota reserve against local Redis (five limits per request)\n');
say(await runQuotaBench());

async function benchMonolith(): Promise<(string | number)[][]> {
  const monoSim = await spawnSimulator();
  const mono = await startBenchMonolith(monoSim.url);
  const client = meshClient(mono.grpcAddr);
  const rows: (string | number)[][] = [];
  try {
    await closedLoop(500, 16, client.chat);
    for (const c of UNARY_LEVELS) {
      const runs: Summary[] = [];
      for (let run = 0; run < RUNS; run++) {
        const r = await closedLoop(c === 1 ? 1500 : UNARY_TOTAL, c, client.chat);
        runs.push(summarise(r.latencies, r.elapsedMs));
      }
      const med = (k: 'rps' | 'p50' | 'p95' | 'p99') => median(runs.map((x) => x[k]));
      rows.push(['monolith', c, med('rps'), med('p50'), med('p95'), med('p99')]);
    }
  } finally {
    client.close();
    await mono.stop();
    monoSim.stop();
  }
  return rows;
}
