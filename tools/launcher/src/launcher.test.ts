import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canConnect, freePort, programArgs } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { ADDR_ENV, SERVICE_NAMES, type ServiceAddrs } from '@llmgw/runtime';
import { startMonolith } from './monolith.js';
import { checkWholeConfig } from './whole-config.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const EXAMPLE = join(REPO, 'config/gateway.yaml');
const example = readFileSync(EXAMPLE, 'utf8');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'llmgw-launcher-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

async function freeAddrs(): Promise<ServiceAddrs> {
  const addrs = {} as ServiceAddrs;
  for (const n of SERVICE_NAMES) addrs[n] = `127.0.0.1:${await freePort()}`;
  return addrs;
}

describe('the whole-file check', () => {
  it('accepts the example config and names every problem of a bad one', () => {
    expect(checkWholeConfig(EXAMPLE, {}).ok).toBe(true);
    const bad = write('bad.yaml', example.replace('provider: sim-gemini', 'provider: nowhere').replace('  ops:\n    tier: enterprise', '  ops:\n    tier: gold'));
    const r = checkWholeConfig(bad, {});
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.source).toBe(bad);
      expect(r.problems).toEqual(['models.gemini-flash.provider: unknown provider "nowhere"', 'tenants.ops.tier: unknown tier "gold"']);
    }
  });

  it('npm run config:check prints "config ok" or every problem with exit code 1', () => {
    const run = (path: string) => spawnSync(process.execPath, [...programArgs('tools/launcher/src/config-check.ts'), path], { cwd: REPO, encoding: 'utf8' });
    const ok = run(EXAMPLE);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('config ok');
    const bad = run(write('bad2.yaml', example.replace('default_route: support-chat', 'default_route: nowhere\nsurprise: 1')));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('default_route: unknown route "nowhere"');
    expect(bad.stderr).toContain('Unrecognized key: "surprise"');
  });
});

describe('monolithic mode', () => {
  it('each service loads its own sections and environment; every problem is named before anything starts', async () => {
    const path = write('mono-bad.yaml', example.replace('  acme:\n    tier: startup', '  acme:\n    tier: gold').replace('kind: anthropic', 'kind: pigeon'));
    const addrs = await freeAddrs();
    const err = await startMonolith({ configPath: path, logger: silentLogger(), addrs, env: { QUOTA_REDIS_TIMEOUT_MS: 'soon' } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    const message = (err as Error).message;
    expect(message).toContain('tenants.acme.tier: unknown tier "gold"'); // quota's view
    expect(message).toContain('providers.sim-anthropic.kind'); // the executor's
    expect(message).toContain('QUOTA_REDIS_TIMEOUT_MS: expected a non-negative integer, got "soon"');
    for (const n of SERVICE_NAMES) expect(await canConnect(Number(addrs[n].split(':')[1]))).toBe(false);
  });

  it('starts the six services on their ports, and the edge\'s HTTP surface, and stops them', async () => {
    const addrs = await freeAddrs();
    const httpPort = await freePort();
    const mono = await startMonolith({ configPath: EXAMPLE, logger: silentLogger(), addrs, env: { EDGE_HTTP_ADDR: `127.0.0.1:${httpPort}`, ACCOUNTANT_HTTP_ADDR: `127.0.0.1:${await freePort()}` } });
    try {
      expect(mono.services.map((s) => s.name).sort()).toEqual([...SERVICE_NAMES].sort());
      for (const n of SERVICE_NAMES) expect(await canConnect(Number(addrs[n].split(':')[1]))).toBe(true);
      expect(await canConnect(httpPort)).toBe(true);
    } finally {
      await mono.close();
    }
    expect(await canConnect(httpPort)).toBe(false);
  });
});

describe('npm start', () => {
  it('prints the edge\'s gRPC address, the HTTP base URL (which answers) and a demo key per tier', async () => {
    const addrs = await freeAddrs();
    const env: Record<string, string> = { LLMGW_MODE: 'monolith', SIMULATOR_PORT: String(await freePort()), EDGE_HTTP_ADDR: `127.0.0.1:${await freePort()}`, ACCOUNTANT_HTTP_ADDR: `127.0.0.1:${await freePort()}`, LOG_LEVEL: 'warn' };
    for (const n of SERVICE_NAMES) env[ADDR_ENV[n]] = addrs[n];
    const child = spawn(process.execPath, programArgs('tools/launcher/src/main.ts'), { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += String(d);
          if (out.includes('Ctrl-C stops everything.')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`npm start exited (${code}):\n${out}`)));
      });
      expect(out).toContain(`listening on ${addrs.edge}`);
      const baseUrl = /HTTP base URL: (http:\/\/\S+)/.exec(out)?.[1];
      expect(baseUrl).toBe(`http://${env.EDGE_HTTP_ADDR}/v1`);
      const dashboard = /usage dashboard: (http:\/\/\S+)/.exec(out)?.[1];
      expect(dashboard).toBe(`http://${env.ACCOUNTANT_HTTP_ADDR}/dashboard`);
      expect((await fetch(dashboard!)).headers.get('content-type')).toContain('text/html');
      const keys = [...out.matchAll(/demo key, (\S+) tier \(tenant [^)]*\): (\S+)/g)];
      expect(new Set(keys.map((k) => k[1])).size).toBeGreaterThanOrEqual(2);
      const demo = keys.find((k) => !out.split('\n').find((l) => l.includes(k[2]!))!.includes('admin'))![2]!;
      const res = await fetch(`${baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${demo}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'support-chat', messages: [{ role: 'user', content: 'Hello' }] }),
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { choices: { message: { content: string } }[] }).choices[0]?.message.content).toMatch(/\S/);
    } finally {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    }
  }, 60_000);
});
