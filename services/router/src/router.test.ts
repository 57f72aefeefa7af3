import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { MemoryEventBus, Subjects } from '@llmgw/events';
import { callUnary, dial } from '@llmgw/grpc';
import { silentLogger } from '@llmgw/logging';
import { BackendHealthChanged } from '@llmgw/proto/executor';
import { PlanRouteRequest, RouterServiceClient } from '@llmgw/proto/router';
import { AttemptOutcome } from '@llmgw/proto/v1';
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

describe('router service and backend health', () => {
  let running: RunningService | undefined;
  let client: RouterServiceClient | undefined;
  let bus: MemoryEventBus;

  afterEach(async () => {
    client?.close();
    await running?.close();
    running = undefined;
    await bus.close();
  });

  const health = (p: Partial<BackendHealthChanged>) =>
    bus.broadcast(
      Subjects.backendHealth,
      BackendHealthChanged.encode(BackendHealthChanged.fromPartial({ provider: 'p-openai', replicaId: 'executor-1', occurredAt: new Date(), ...p })).finish(),
    );

  it('plans around a model an executor broadcasts as unhealthy, and back once it is healthy', async () => {
    bus = new MemoryEventBus();
    running = await startRouter({
      config: testPolicy(),
      logger: silentLogger(),
      listenAddr: '127.0.0.1:0',
      addrs: addrsFromEnv({}),
      bus,
      drainMs: 0,
      env: { GATEWAY_CONFIG: '/nonexistent/router-health-test.yaml' },
    });
    client = dial(RouterServiceClient, `127.0.0.1:${running.port}`);
    const plan = async (req: Partial<PlanRouteRequest> = {}) =>
      (await callUnary(client!.planRoute.bind(client!), PlanRouteRequest.fromPartial({ tenantId: 'acme', ...req }), { timeoutMs: 2_000 })).plan;

    expect((await plan())?.attempts.map((a) => a.model)).toEqual(['small-fast', 'small-backup']);

    health({ model: 'small-fast', healthy: false, unhealthyForMs: 60_000, reason: '5 consecutive retriable failures (last: http_5xx)' });
    const around = await plan();
    expect(around?.attempts.map((a) => a.model)).toEqual(['small-backup']);
    expect(around?.skipped).toEqual([
      expect.objectContaining({ model: 'small-fast', outcome: AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED, reason: 'unhealthy', error: expect.stringContaining('small-fast') }),
    ]);
    // A pin is honoured whatever the health.
    expect((await plan({ model: 'small-fast' }))?.attempts.map((a) => a.model)).toEqual(['small-fast']);

    // Everything unhealthy: keep the whole chain rather than refuse.
    health({ model: 'small-backup', provider: 'p-anthropic', replicaId: 'executor-2', healthy: false, unhealthyForMs: 60_000 });
    expect((await plan())?.attempts.map((a) => a.model)).toEqual(['small-fast', 'small-backup']);

    health({ model: 'small-backup', provider: 'p-anthropic', replicaId: 'executor-2', healthy: true });
    expect((await plan())?.attempts.map((a) => a.model)).toEqual(['small-backup']);

    // Garbage on the subject is dropped, not fatal.
    bus.broadcast(Subjects.backendHealth, new Uint8Array([0xff, 0xff, 0xff]));
    health({ model: 'small-fast', healthy: true });
    const back = await plan();
    expect(back?.attempts.map((a) => a.model)).toEqual(['small-fast', 'small-backup']);
    expect(back?.skipped).toEqual([]);
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
