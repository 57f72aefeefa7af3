import { SERVICE_NAMES } from '@llmgw/runtime';
import { BENCH_KEY, directClient, grpcChatLoad, httpChatLoad, meshClient, openAiClient, surfaceChatLoad } from './clients.js';
import { h2load, requireH2load, type LoadResult, type LoadTarget } from './h2load.js';
import { cpuMicros, PORTKEY_VERSION, rssMiB, spawnSimulator, startBenchMesh, startBenchMonolith, startPortkey } from './processes.js';
import { closedLoop, median, summarise, table } from './stats.js';

/**
 * `npm run bench -- peer`: the mesh (microservices with mutual TLS, and monolithic) beside
 * Portkey's open-source gateway, pinned, on one machine: the same simulator (its own process) for
 * every path and one load generator (h2load) for every path. Our HTTP surface is compared with
 * Portkey's HTTP; the gRPC edge is shown beside both. Medians of BENCH_RUNS runs (default 3),
 * each run starting with another path. Every run is checked against the simulator's bill: it must
 * have served exactly the requests the load generator saw succeed.
 */
const say = (s: string) => process.stdout.write(`${s}\n`);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3000);
const PACED_RPS = 500;
const PACED_SECONDS = Number(process.env.BENCH_PACED_SECONDS ?? 10);

interface Path {
  name: string;
  target: LoadTarget;
  /** The gateway's processes, for CPU and memory; none for the simulator alone. */
  pids: () => (number | undefined)[];
}

requireH2load();
const sim = await spawnSimulator();
const portkey = await startPortkey();
const bench = await startBenchMesh(sim.url);
const mono = await startBenchMonolith(sim.url);
const meshPids = () => SERVICE_NAMES.map((n) => bench.mesh.processes.get(n)?.pid);

const paths: Path[] = [
  { name: 'simulator direct', target: httpChatLoad(sim.url, { authorization: 'Bearer bench-key' }, 'gpt-4o-mini'), pids: () => [] },
  {
    name: `Portkey ${PORTKEY_VERSION}, HTTP`,
    target: httpChatLoad(portkey.url, { authorization: 'Bearer bench-key', 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${sim.url}/v1` }, 'gpt-4o-mini'),
    pids: () => [portkey.process.pid],
  },
  { name: 'mesh, HTTP surface', target: surfaceChatLoad(bench.mesh.edgeHttpAddr), pids: meshPids },
  { name: 'mesh, gRPC edge', target: grpcChatLoad(bench.mesh.addrs.edge), pids: meshPids },
  { name: 'monolith, HTTP surface', target: surfaceChatLoad(mono.httpAddr), pids: () => [mono.process.pid] },
  { name: 'monolith, gRPC edge', target: grpcChatLoad(mono.grpcAddr), pids: () => [mono.process.pid] },
];

const sum = (pids: (number | undefined)[], f: (pid: number | undefined) => number) => pids.reduce<number>((n, pid) => n + f(pid), 0);
const billed = async () => ((await (await fetch(`${sim.url}/_simulator/bill`)).json()) as { total: { requests: number } }).total.requests;

/** One load on one path, checked against the simulator's bill. */
async function measure(path: Path, shape: Parameters<typeof h2load>[1]): Promise<LoadResult> {
  const before = await billed();
  const r = await h2load(path.target, shape);
  const served = (await billed()) - before;
  // h2load sees a gRPC error as HTTP 200: over h2c the requests the simulator did not serve are
  // the failures (a rare fail-closed quota denial when the VM stalls Redis past its timeout).
  const unserved = r.count - served;
  if (unserved < 0 || (unserved > 0 && path.target.protocol !== 'h2c')) throw new Error(`${path.name}: ${r.count} succeeded but the simulator served ${served}`);
  if (unserved > 0) {
    r.failed += unserved;
    r.count -= unserved;
    r.failures['grpc-error'] = unserved;
  }
  if (r.failed > 0) say(`  ${path.name}: ${r.failed} of ${r.failed + r.count} failed (${JSON.stringify(r.failures)})`);
  return r;
}

type Figures = { p50At1: number; rps16: number; rps64: number; p99Paced: number; cpu64: number };
const runs = paths.map(() => ({ p50At1: [] as number[], rps16: [] as number[], rps64: [] as number[], p99Paced: [] as number[], cpu64: [] as number[] }));

try {
  say(`peer bench: ${paths.length} paths, ${RUNS} runs each; h2load; the simulator at ${sim.url}`);
  for (const p of paths) await measure(p, { kind: 'closed', inFlight: 16, requests: 1000 }); // warm-up: JIT, pools, scripts
  for (let run = 0; run < RUNS; run++) {
    for (let k = 0; k < paths.length; k++) {
      const i = (run + k) % paths.length;
      const path = paths[i]!;
      const r = runs[i]!;
      r.p50At1.push((await measure(path, { kind: 'closed', inFlight: 1, requests: Math.min(REQUESTS, 1000) })).p50);
      r.rps16.push((await measure(path, { kind: 'closed', inFlight: 16, requests: REQUESTS })).rps);
      const pids = path.pids();
      const cpuBefore = sum(pids, cpuMicros);
      const at64 = await measure(path, { kind: 'closed', inFlight: 64, requests: REQUESTS });
      r.rps64.push(at64.rps);
      r.cpu64.push(pids.length ? (sum(pids, cpuMicros) - cpuBefore) / at64.count : NaN);
      r.p99Paced.push((await measure(path, { kind: 'paced', rps: PACED_RPS, seconds: PACED_SECONDS })).p99);
    }
  }
  const med = runs.map((r): Figures => ({ p50At1: median(r.p50At1), rps16: median(r.rps16), rps64: median(r.rps64), p99Paced: median(r.p99Paced), cpu64: median(r.cpu64) }));
  const rss = paths.map((p) => sum(p.pids(), (pid) => rssMiB(pid, 'VmRSS')));
  const direct = med[0]!;
  const peer = med[1]!;

  say(`\n## Side by side (medians of ${RUNS} runs; h2load; one simulator)\n`);
  say(
    table(
      ['path', 'p50 ms, 1 in flight', 'added p50 ms', 'req/s, 16 in flight', 'req/s, 64 in flight', `p99 ms, paced ${PACED_RPS} req/s`, 'CPU µs / request', 'RSS MiB'],
      paths.map((p, i) => [p.name, med[i]!.p50At1, i === 0 ? '' : med[i]!.p50At1 - direct.p50At1, med[i]!.rps16, med[i]!.rps64, med[i]!.p99Paced, i === 0 ? '' : med[i]!.cpu64, i === 0 ? '' : rss[i]!]),
    ),
  );
  say(`\n## Against Portkey ${PORTKEY_VERSION}\n`);
  const added = (f: Figures) => f.p50At1 - direct.p50At1;
  say(
    table(
      ['path', 'throughput, 64 in flight', 'throughput, 16 in flight', 'added p50, 1 in flight', `p99, paced ${PACED_RPS} req/s`, 'RSS'],
      paths.slice(2).map((p, j) => {
        const f = med[j + 2]!;
        return [p.name, `${(f.rps64 / peer.rps64).toFixed(2)}×`, `${(f.rps16 / peer.rps16).toFixed(2)}×`, `${(added(f) / added(peer)).toFixed(2)}×`, `${(f.p99Paced / peer.p99Paced).toFixed(2)}×`, `${(rss[j + 2]! / rss[1]!).toFixed(2)}×`];
      }),
    ),
  );

  // Streaming: time to the first content chunk, one stream at a time (h2load cannot see chunks).
  const ttft = async (stream: () => Promise<{ ttft: number }>) => {
    const xs: number[] = [];
    await closedLoop(300, 1, async () => void xs.push((await stream()).ttft));
    return summarise(xs, 1).p50;
  };
  const d = directClient(sim.url);
  const g = meshClient(bench.mesh.addrs.edge);
  const h = openAiClient(`http://${bench.mesh.edgeHttpAddr}`, { model: 'chat', apiKey: BENCH_KEY });
  const ttfts = { direct: [] as number[], grpc: [] as number[], http: [] as number[] };
  for (let run = 0; run < RUNS; run++) {
    ttfts.direct.push(await ttft(d.stream));
    ttfts.grpc.push(await ttft(() => g.stream()));
    ttfts.http.push(await ttft(h.stream));
  }
  [d, g, h].forEach((c) => c.close());
  const ttftDirect = median(ttfts.direct);
  say('\n## Streaming: time to first token, one stream at a time (p50 ms, medians of runs)\n');
  say(
    table(
      ['path', 'TTFT p50 ms', 'added ms'],
      [
        ['simulator direct', ttftDirect, ''],
        ['mesh, gRPC edge', median(ttfts.grpc), median(ttfts.grpc) - ttftDirect],
        ['mesh, HTTP surface', median(ttfts.http), median(ttfts.http) - ttftDirect],
      ],
    ),
  );

  const [meshHttp, meshGrpc, monoHttp] = [med[2]!, med[3]!, med[4]!];
  const check = (ok: boolean) => (ok ? 'met' : 'missed');
  say('\n## Targets (microservices with mutual TLS, and monolithic)\n');
  say(
    table(
      ['target', 'measured', ''],
      [
        ['mesh throughput at 64 in flight ≥ 1.2× Portkey (HTTP surface)', `${(meshHttp.rps64 / peer.rps64).toFixed(2)}×`, check(meshHttp.rps64 >= 1.2 * peer.rps64)],
        ['  the same through the gRPC edge', `${(meshGrpc.rps64 / peer.rps64).toFixed(2)}×`, check(meshGrpc.rps64 >= 1.2 * peer.rps64)],
        ['mesh added p50 at 1 in flight ≤ 2 ms (HTTP surface)', `${added(meshHttp).toFixed(2)} ms`, check(added(meshHttp) <= 2)],
        ['  the same through the gRPC edge', `${added(meshGrpc).toFixed(2)} ms`, check(added(meshGrpc) <= 2)],
        [`mesh p99 at a paced ${PACED_RPS} req/s ≤ 20 ms (HTTP surface)`, `${meshHttp.p99Paced.toFixed(2)} ms`, check(meshHttp.p99Paced <= 20)],
        ['six services RSS ≤ 600 MB after the load', `${((rss[2]! * 1048576) / 1e6).toFixed(0)} MB`, check(rss[2]! * 1048576 <= 600e6)],
        ['monolith throughput ≥ 2× Portkey (HTTP surface)', `${(monoHttp.rps64 / peer.rps64).toFixed(2)}×`, check(monoHttp.rps64 >= 2 * peer.rps64)],
        ['monolith added p50 ≤ 1 ms (HTTP surface)', `${added(monoHttp).toFixed(2)} ms`, check(added(monoHttp) <= 1)],
        ['mesh TTFT added ≤ 1.5 ms at p50 (gRPC edge)', `${(median(ttfts.grpc) - ttftDirect).toFixed(2)} ms`, check(median(ttfts.grpc) - ttftDirect <= 1.5)],
      ],
    ),
  );
} finally {
  await Promise.all([bench.stop(), mono.stop(), portkey.stop()]);
  sim.stop();
}
