import { credentials, Metadata } from '@grpc/grpc-js';
import { costMicros } from '@llmgw/pricing';
import { GetUsageRequest, UsageServiceClient, type GetUsageResponse } from '@llmgw/proto/v1';
import { SERVICE_NAMES } from '@llmgw/runtime';
import { BENCH_KEY, surfaceChatLoad } from './clients.js';
import { h2load, requireH2load } from './h2load.js';
import { rssMiB, spawnSimulator, startBenchMesh } from './processes.js';
import { table } from './stats.js';

/**
 * `npm run bench -- soak`: the sealed mesh at a steady 300 req/s on the HTTP surface for ten
 * minutes (SOAK_SECONDS, SOAK_RPS). Passes when the six services' RSS grows by less than 10%
 * between minute 2 and the end, and the accountant's totals equal the simulator's bill exactly.
 */
const say = (s: string) => process.stdout.write(`${s}\n`);
const SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const RPS = Number(process.env.SOAK_RPS ?? 300);
/** The bench config's price of its one model (bench/gateway.bench.yaml, small-fast). */
const PRICE = { inputPerMillionUsd: 0.15, outputPerMillionUsd: 0.6, cachedInputPerMillionUsd: 0.15, cacheWriteInputPerMillionUsd: 0.15 };

requireH2load();
const sim = await spawnSimulator();
const bench = await startBenchMesh(sim.url);
const rss = () => SERVICE_NAMES.reduce((n, name) => n + rssMiB(bench.mesh.processes.get(name)?.pid, 'VmRSS'), 0);
const bill = async () => (await (await fetch(`${sim.url}/_simulator/bill`)).json()) as { total: { requests: number; input_tokens: number; output_tokens: number } };
const usage = new UsageServiceClient(bench.mesh.addrs.edge, credentials.createInsecure());
const md = new Metadata();
md.set('authorization', `Bearer ${BENCH_KEY}`);
const accountant = () =>
  new Promise<GetUsageResponse>((resolve, reject) =>
    usage.getUsage(GetUsageRequest.fromPartial({ tenantId: 'bench' }), md, { deadline: Date.now() + 10_000 }, (err, res) => (err || !res ? reject(err) : resolve(res))),
  );

let failed = false;
try {
  say(`soak: ${RPS} req/s for ${SECONDS} s on the HTTP surface of the sealed mesh`);
  const samples: [number, number][] = [];
  const t0 = Date.now();
  const sampler = setInterval(() => samples.push([(Date.now() - t0) / 1000, rss()]), 5_000);
  const load = await h2load(
    surfaceChatLoad(bench.mesh.edgeHttpAddr),
    { kind: 'paced', rps: RPS, seconds: SECONDS },
  );
  clearInterval(sampler);
  samples.push([(Date.now() - t0) / 1000, rss()]);

  // The accountant trails the answers by its consumer's batch: wait until it has every event.
  const sim = await bill();
  let acct = await accountant();
  for (let i = 0; i < 60 && (acct.total?.requests ?? 0) < sim.total.requests; i++) {
    await new Promise((r) => setTimeout(r, 500));
    acct = await accountant();
  }
  const perRequest = { input: sim.total.input_tokens / sim.total.requests, output: sim.total.output_tokens / sim.total.requests };
  // Every request of the soak is the same chat, so the bill's cost is the requests times one request's price.
  const billMicros = Number.isInteger(perRequest.input) && Number.isInteger(perRequest.output) ? sim.total.requests * costMicros(PRICE, { inputTokens: perRequest.input, outputTokens: perRequest.output }) : NaN;

  const atMinute2 = samples.find(([t]) => t >= 120) ?? samples[0]!;
  const atEnd = samples.at(-1)!;
  const growth = (atEnd[1] - atMinute2[1]) / atMinute2[1];
  say('\n## Six services RSS (MiB), by minute\n');
  say(table(['minute', 'RSS MiB'], samples.filter(([t], i) => i === samples.length - 1 || Math.round(t) % 60 < 5).map(([t, r]) => [(t / 60).toFixed(1), r])));
  say('\n## Soak result\n');
  const t = acct.total;
  const rows: [string, string | number, string | number, boolean][] = [
    ['requests', sim.total.requests, t?.requests ?? 0, t?.requests === sim.total.requests],
    ['input tokens', sim.total.input_tokens, t?.inputTokens ?? 0, t?.inputTokens === sim.total.input_tokens],
    ['output tokens', sim.total.output_tokens, t?.outputTokens ?? 0, t?.outputTokens === sim.total.output_tokens],
    ['cost (µ$)', billMicros, t?.costMicros ?? 0, t?.costMicros === billMicros],
  ];
  say(table(['', 'simulator bill', 'accountant', ''], rows.map(([k, a, b, ok]) => [k, a, b, ok ? 'equal' : 'DIFFERENT'])));
  say(
    `\nload: ${load.count} answered, ${load.failed} failed ${JSON.stringify(load.failures)}, p50 ${load.p50.toFixed(2)} ms, p99 ${load.p99.toFixed(2)} ms; ` +
      `RSS ${atMinute2[1].toFixed(0)} MiB at ${(atMinute2[0] / 60).toFixed(1)} min → ${atEnd[1].toFixed(0)} MiB at the end: ${(growth * 100).toFixed(1)}% (limit 10%)`,
  );
  failed = growth >= 0.1 || load.failed > 0 || rows.some(([, , , ok]) => !ok);
  say(failed ? 'soak: FAILED' : 'soak: passed');
} finally {
  usage.close();
  await bench.stop();
  sim.stop();
}
process.exitCode = failed ? 1 : 0;
