import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { combineServiceEnv, createMeshPki, meshCredentials, startNatsServer, startRedisServer, startServiceProcesses, type ServiceProcesses } from '@llmgw/local-infra';
import { SERVICE_NAMES } from '@llmgw/runtime';
import { meshClient } from './clients.js';
import { cpuMicros, spawnSimulator } from './processes.js';
import { closedLoop, median, summarise, table } from './stats.js';

/**
 * `npm run bench:tls`: what mutual TLS inside the mesh costs. The same mesh twice (plaintext,
 * then mTLS with a throwaway CA), the same unary chat through the edge; runs alternate between
 * the two so that the machine's noise hits both alike. CPU is summed over the six services.
 */
const say = (s: string) => process.stdout.write(`${s}\n`);
const signed = (n: number) => `${n >= 0 ? '+' : '−'}${Math.abs(n).toFixed(0)}`;
const LEVELS = [1, 16, 64];
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const TOTAL = Number(process.env.BENCH_REQUESTS ?? 3000);

const sim = await spawnSimulator();
// Each mesh has its own Redis and NATS, as two deployments would, with a user per service in both.
const creds = meshCredentials();
const infra = await Promise.all([0, 1].map(() => Promise.all([startRedisServer({ users: creds.redisUsers }), startNatsServer({ users: creds.natsUsers })])));
const pkiDir = mkdtempSync(join(tmpdir(), 'llmgw-bench-tls-'));
const pki = createMeshPki(pkiDir);
const credsOf = (i: number) => creds.serviceEnv({ redis: infra[i]![0], nats: infra[i]![1] });
const env = {
  GATEWAY_CONFIG: fileURLToPath(new URL('../gateway.bench.yaml', import.meta.url)),
  SIMULATOR_URL: sim.url,
  SLOW_SIMULATOR_URL: sim.url,
  LOG_LEVEL: 'warn',
};
const meshes: [string, ServiceProcesses][] = [
  ['plaintext', await startServiceProcesses({ env, serviceEnv: credsOf(0), logDir: mkdtempSync(join(tmpdir(), 'llmgw-bench-plain-')) })],
  ['mTLS', await startServiceProcesses({ env, serviceEnv: combineServiceEnv(pki.tlsEnv, credsOf(1)), logDir: mkdtempSync(join(tmpdir(), 'llmgw-bench-mtls-')) })],
];
const clients = meshes.map(([, m]) => meshClient(m.addrs.edge));

try {
  for (const c of clients) await closedLoop(500, 16, c.chat);
  const rows: (string | number)[][] = [];
  for (const level of LEVELS) {
    const total = level === 1 ? Math.min(TOTAL, 1500) : TOTAL;
    const results = meshes.map(() => ({ rps: [] as number[], p50: [] as number[], p99: [] as number[], cpu: [] as number[] }));
    for (let run = 0; run < RUNS; run++) {
      for (const [i, [, mesh]] of meshes.entries()) {
        const pids = SERVICE_NAMES.map((n) => mesh.processes.get(n)?.pid);
        const before = pids.map(cpuMicros);
        const r = await closedLoop(total, level, clients[i]!.chat);
        const cpu = pids.reduce<number>((sum, pid, k) => sum + cpuMicros(pid) - before[k]!, 0);
        const s = summarise(r.latencies, r.elapsedMs);
        results[i]!.rps.push(s.rps);
        results[i]!.p50.push(s.p50);
        results[i]!.p99.push(s.p99);
        results[i]!.cpu.push(cpu / total);
      }
    }
    const [plain, tls] = results.map((r) => ({ rps: median(r.rps), p50: median(r.p50), p99: median(r.p99), cpu: median(r.cpu) }));
    rows.push(['plaintext', level, plain!.rps, plain!.p50, plain!.p99, plain!.cpu, '']);
    rows.push(['mTLS', level, tls!.rps, tls!.p50, tls!.p99, tls!.cpu, `${((tls!.rps / plain!.rps) * 100).toFixed(0)}% of plaintext req/s, ${signed(tls!.cpu - plain!.cpu)} µs CPU`]);
  }
  say('\n## Mutual TLS inside the mesh: unary chat through the edge (medians of the runs)\n');
  say(table(['mesh', 'in flight', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs / request (6 services)', 'mTLS vs plaintext'], rows));
} finally {
  for (const c of clients) c.close();
  await Promise.all(meshes.map(([, m]) => m.stop()));
  await Promise.all(infra.flat().map((s) => s.stop()));
  sim.stop();
  rmSync(pkiDir, { recursive: true, force: true });
}
