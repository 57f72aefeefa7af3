import { AttemptOutcome } from '@llmgw/proto/v1';
import { meshClient } from './clients.js';
import { spawnSimulator, startBenchMesh } from './processes.js';
import { median, percentile, table } from './stats.js';

/**
 * `npm run bench -- hedge`: a route whose primary answers one request in ten 500 ms late (the
 * simulator's `-slow-500-every-10`), with a healthy backup behind it, through the sealed mesh one
 * request at a time: without hedging, with a hedge to the backup after a fixed 20 ms, and after
 * the primary's p95 as the executor measures it (within 5–100 ms). Routes `flaky*` of
 * bench/gateway.bench.yaml; the healthy model alone is the floor. The variants take turns request
 * by request, so that a shared machine's noise falls on all of them alike. Hedges sent and won
 * are read from each answer's routing record. Medians of the runs.
 */
const say = (s: string) => process.stdout.write(`${s}\n`);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 500);
/** What the simulator adds to a slow answer of the primary. */
const SLOW_MS = 500;
/** The target: hedging cuts the route's p99 by this factor at least. */
const TARGET_CUT = 5;

/** `hedged` variants are compared with the one without hedging. */
const VARIANTS: { name: string; route: string; hedged: boolean }[] = [
  { name: 'healthy model alone (floor)', route: 'chat', hedged: false },
  { name: 'no hedge', route: 'flaky', hedged: false },
  { name: 'hedge after 20 ms', route: 'flaky-hedged', hedged: true },
  { name: 'hedge after p95 (5–100 ms)', route: 'flaky-hedged-p95', hedged: true },
];
const BASELINE = VARIANTS.findIndex((v) => v.route === 'flaky');

interface Run {
  p50: number;
  p95: number;
  p99: number;
  slow: number;
  sent: number;
  won: number;
}

const sim = await spawnSimulator();
const bench = await startBenchMesh(sim.url);
const clients = VARIANTS.map((v) => meshClient(bench.mesh.addrs.edge, v.route));

/** `requests` chats on each variant's route, one at a time, the variants in turn. */
async function measure(requests: number): Promise<Run[]> {
  const samples = VARIANTS.map(() => ({ latencies: [] as number[], sent: 0, won: 0 }));
  for (let n = 0; n < requests; n++) {
    for (const [i, client] of clients.entries()) {
      const s = samples[i]!;
      const t0 = performance.now();
      const res = await client.chat();
      s.latencies.push(performance.now() - t0);
      for (const a of res.routing?.attempts ?? []) {
        if (!a.hedge) continue;
        s.sent++;
        if (a.outcome === AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS) s.won++;
      }
    }
  }
  return samples.map(({ latencies, sent, won }) => {
    const sorted = latencies.sort((a, b) => a - b);
    return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), slow: sorted.filter((ms) => ms >= SLOW_MS).length, sent, won };
  });
}

try {
  // Warm-up: JIT, connection pools, and the executor's latency window of the p95 route (20 answers at least).
  await measure(100);
  const runs: Run[][] = VARIANTS.map(() => []);
  for (let run = 0; run < RUNS; run++) (await measure(REQUESTS)).forEach((r, i) => runs[i]!.push(r));
  const med = (i: number, key: keyof Run) => median(runs[i]!.map((r) => r[key]));
  const cut = (i: number) => med(BASELINE, 'p99') / med(i, 'p99');
  say(`\n## Hedging a primary that answers 10% of requests ${SLOW_MS} ms late (${REQUESTS} requests per route one at a time, the routes in turn; medians of ${RUNS} runs)\n`);
  say(
    table(
      ['variant', 'route', 'requests', 'p50 ms', 'p95 ms', 'p99 ms', `answers ≥ ${SLOW_MS} ms`, 'hedges sent', 'hedges won', 'p99 cut vs no hedge'],
      VARIANTS.map((v, i) => [v.name, v.route, REQUESTS, med(i, 'p50'), med(i, 'p95'), med(i, 'p99'), med(i, 'slow'), med(i, 'sent'), med(i, 'won'), v.hedged ? `${cut(i).toFixed(1)}×` : '']),
    ),
  );
  const verdicts = VARIANTS.flatMap((v, i) => (v.hedged ? [`${v.name} ${cut(i) >= TARGET_CUT ? 'met' : 'missed'}`] : []));
  say(`\nTarget: p99 cut ≥ ${TARGET_CUT}×: ${verdicts.join('; ')}.`);
} finally {
  for (const c of clients) c.close();
  await bench.stop();
  sim.stop();
}
