import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { MemoryEventBus } from '@llmgw/events';
import { callUnary, dial } from '@llmgw/grpc';
import { silentLogger } from '@llmgw/logging';
import { PlanRouteRequest, RouterServiceClient } from '@llmgw/proto/router';
import { addrsFromEnv, type RunningService } from '@llmgw/runtime';
import { pino } from 'pino';
import { startRouter } from './index.js';
import { PolicyWatcher } from './policy-watcher.js';
import { testPolicy, testPolicyYaml } from './test-config.js';

async function eventually<T>(fn: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Writes through a temp file and rename, as editors and ConfigMap updates do. */
function writeAtomically(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

describe('router service', () => {
  let dir: string;
  let path: string;
  let running: RunningService | undefined;
  let client: RouterServiceClient | undefined;
  const logLines: { level: number; msg: string }[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'router-test-'));
    path = join(dir, 'gateway.yaml');
    writeFileSync(path, testPolicyYaml('small-fast'));
    logLines.length = 0;
  });

  afterEach(async () => {
    client?.close();
    await running?.close();
    running = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const plan = (req: Partial<PlanRouteRequest>) =>
    callUnary(client!.planRoute.bind(client!), PlanRouteRequest.fromPartial({ tenantId: 'acme', ...req }), { timeoutMs: 2_000 });

  it('serves plans over gRPC, hot-reloads a changed policy and keeps it through a broken edit', async () => {
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => logLines.push(JSON.parse(line) as { level: number; msg: string }) },
    );
    running = await startRouter({
      config: testPolicy('small-fast'),
      logger,
      listenAddr: '127.0.0.1:0',
      addrs: addrsFromEnv({}),
      bus: new MemoryEventBus(),
      drainMs: 0,
      env: { GATEWAY_CONFIG: path, POLICY_POLL_MS: '20' },
    });
    client = dial(RouterServiceClient, `127.0.0.1:${running.port}`);

    const first = await plan({});
    expect(first.plan?.attempts.map((a) => a.model)).toEqual(['small-fast', 'small-backup']);

    writeAtomically(path, testPolicyYaml('coder'));
    const changed = await eventually(() => plan({}), (r) => r.plan?.attempts[0]?.model === 'coder');
    expect(changed.plan?.attempts.map((a) => a.model)).toEqual(['coder', 'small-backup']);
    expect(logLines.some((l) => l.msg === 'policy reloaded')).toBe(true);

    writeAtomically(path, testPolicyYaml('no-such-model'));
    const err = await eventually(
      () => logLines.filter((l) => l.level >= 50),
      (lines) => lines.length > 0,
    );
    expect(err).toHaveLength(1);
    expect(err[0]?.msg).toContain('unknown model "no-such-model"');
    expect(err[0]?.msg).toContain('keeping the previous policy');
    const kept = await plan({});
    expect(kept.plan?.attempts.map((a) => a.model)).toEqual(['coder', 'small-backup']);

    writeAtomically(path, 'default_route: [unclosed');
    await eventually(() => logLines.filter((l) => l.level >= 50).length, (n) => n >= 2);
    expect((await plan({})).plan?.rule).toBe('default');
    expect((await plan({})).plan?.attempts[0]?.model).toBe('coder');
  });

  it('maps planner errors to gRPC statuses', async () => {
    running = await startRouter({
      config: testPolicy(),
      logger: silentLogger(),
      listenAddr: '127.0.0.1:0',
      addrs: addrsFromEnv({}),
      bus: new MemoryEventBus(),
      drainMs: 0,
      env: { GATEWAY_CONFIG: path },
    });
    client = dial(RouterServiceClient, `127.0.0.1:${running.port}`);
    await expect(plan({ route: 'nope' })).rejects.toMatchObject({ kind: 'invalid_argument', message: 'unknown route "nope"' });
    await expect(plan({ model: 'large-reasoning' })).rejects.toMatchObject({
      kind: 'permission_denied',
      message: 'tenant acme may not use model large-reasoning',
    });
    const raw = await new Promise<number>((resolve) =>
      client!.planRoute(PlanRouteRequest.fromPartial({ tenantId: 'acme', route: 'nope' }), (e) => resolve(e?.code ?? 0)),
    );
    expect(raw).toBe(status.INVALID_ARGUMENT);
  });
});

describe('PolicyWatcher.reload', () => {
  it('swaps only on a parseable change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'router-watch-'));
    const path = join(dir, 'gateway.yaml');
    try {
      writeFileSync(path, testPolicyYaml('small-backup'));
      const w = new PolicyWatcher(testPolicy(), { path, env: {}, logger: silentLogger() });
      const before = w.current;
      expect(await w.reload()).toBe(true);
      expect(w.current).not.toBe(before);
      expect(w.current.plan(PlanRouteRequest.fromPartial({ tenantId: 'acme' })).attempts[0]?.model).toBe('small-backup');
      expect(await w.reload()).toBe(false); // unchanged content
      writeFileSync(path, 'routes: {}');
      const good = w.current;
      expect(await w.reload()).toBe(false);
      expect(w.current).toBe(good);
      rmSync(path);
      expect(await w.reload()).toBe(false);
      expect(w.current).toBe(good);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
