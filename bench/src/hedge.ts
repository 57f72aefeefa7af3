import { AttemptOutcome, type ChatResponse } from '@llmgw/proto/v1';
import { meshClient } from './clients.js';
import { spawnSimulator, startBenchMesh } from './processes.js';
import { closedLoop, median, summarise, table } from './stats.js';

/**
 * `npm run bench -- hedge`: a route whose primary answers one request in ten 500 ms late (the
 * simulator's `-slow-500-every-10`), with a healthy backup behind it, through the sealed mesh one
 * request at a time: without hedging, with a hedge to the backup after a fixed 20 ms, and after
 * the primary's p95 as the executor measures it (within 5–100 ms). Routes `flaky*` of
 * bench/gateway.bench.yaml; the healthy model alone is the floor. Hedges sent and won are read
 * from each answer's routing record. Medians of the runs, variants alternating within a run.
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

/** One run of `requests` sequential chats on a variant's route. */
async function measure(client: (typeof clients)[number], requests: number): Promise<Run> {
  let sent = 0;
  let won = 0;
  const tally = (res: ChatResponse) => {
    for (const a of res.routing?.attempts ?? []) {
      if (!a.hedge) continue;
      sent++;
      if (a.outcome === AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS) won++;
    }
  };
  const r = await closedLoop(requests, 1, async () => tally(await client.chat()));
  const s = summarise(r.latencies, r.elapsedMs);
  return { p50: s.p50, p95: s.p95, p99: s.p99, slow: r.latencies.filter((ms) => ms >= SLOW_MS).length, sent, won };
}

try {
  // Warm-up: JIT, connection pools, and the executor's latency window of the p95 route (20 answers at least).
  for (const c of clients) await measure(c, 100);
  const runs: Run[][] = VARIANTS.map(() => []);
  for (let run = 0; run < RUNS; run++) {
    for (let k = 0; k < VARIANTS.length; k++) {
      const i = (run + k) % VARIANTS.length;
      runs[i]!.push(await measure(clients[i]!, REQUESTS));
    }
  }
  const med = (i: number, key: keyof Run) => median(runs[i]!.map((r) => r[key]));
  const cut = (i: number) => med(BASELINE, 'p99') / med(i, 'p99');
  say(`\n## Hedging a primary that answers 10% of requests ${SLOW_MS} ms late (${REQUESTS} requests one at a time, medians of ${RUNS} runs)\n`);
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
