import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { ConfigError, ConfigWatcher } from '@llmgw/config';
import { MemoryEventBus, Subjects, type EventBus } from '@llmgw/events';
import { callUnary, dial } from '@llmgw/grpc';
import { silentLogger, type Logger } from '@llmgw/logging';
import { createMetrics } from '@llmgw/metrics';
import { BackendHealthChanged, BackendStatsReport, type ModelStats } from '@llmgw/proto/executor';
import { PlanRouteRequest, RouterServiceClient, Tokenizer } from '@llmgw/proto/router';
import { AttemptOutcome, ResponseFormatType, TaskType } from '@llmgw/proto/v1';
import { addrsFromEnv, type RunningService, type ServiceDeps } from '@llmgw/runtime';
import { pino } from 'pino';
import { parseRouterSections, type RouterConfig } from './config.js';
import { loadRouterConfig, Planner, routerService, startRouter } from './index.js';
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

/** The test policy with one more model and a route that uses it. */
function withNewRoute(yaml: string): string {
  return yaml
    .replace(
      '\nmodels:\n',
      '\nmodels:\n  fresh-model:\n    provider: p-openai\n    pricing: { input_per_million_usd: 3, output_per_million_usd: 9 }\n    context_tokens: 32000\n    tokenizer: openai\n',
    )
    .replace('\nroutes:\n', '\nroutes:\n  fresh-route:\n    max_tokens: 300\n    default_max_tokens: 100\n    max_prompt_tokens: 900\n    rules: [{ name: only, model: fresh-model }]\n')
    .replace('allowed_models: [small-fast, small-backup, coder, embed-small]', 'allowed_models: [small-fast, small-backup, coder, embed-small, fresh-model]');
}

function routerDeps(over: { sections?: RouterConfig['sections']; configPath: string; logger?: Logger; bus?: EventBus; pollMs?: number }): ServiceDeps<RouterConfig> {
  return {
    config: { sections: over.sections ?? testPolicy(), policyPollMs: over.pollMs ?? 20 },
    configPath: over.configPath,
    logger: over.logger ?? silentLogger(),
    listenAddr: '127.0.0.1:0',
    addrs: addrsFromEnv({}),
    bus: over.bus ?? new MemoryEventBus(),
    drainMs: 0,
    env: {},
  };
}

describe('router service', () => {
  let dir: string;
  let path: string;
  let running: RunningService | undefined;
  let client: RouterServiceClient | undefined;
  const logLines: { level: number; msg: string }[] = [];
  const recordingLogger = () =>
    pino({ level: 'info' }, { write: (line: string) => logLines.push(JSON.parse(line) as { level: number; msg: string }) });
  const errorLines = () => logLines.filter((l) => l.level >= 50);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'router-test-'));
    path = join(dir, 'gateway.yaml');
    writeFileSync(path, testPolicyYaml('small-fast'));
    logLines.length = 0;
  });

  afterEach(async () => {
    client?.close();
    client = undefined;
    await running?.close();
    running = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const plan = (req: Partial<PlanRouteRequest>) =>
    callUnary(client!.planRoute.bind(client!), PlanRouteRequest.fromPartial({ tenantId: 'acme', tier: 'startup', ...req }), { timeoutMs: 2_000 });

  async function start(over: { logger?: Logger; pollMs?: number } = {}) {
    running = await startRouter(routerDeps({ configPath: path, ...over }));
    client = dial(RouterServiceClient, `127.0.0.1:${running.port}`);
  }

  it('serves self-sufficient plans over gRPC: pricing, tokenizer, limits, guardrails and prompt range survive the wire', async () => {
    await start();
    const p = (await plan({ route: 'guarded', promptTokens: 10 })).plan;
    expect(p?.attempts).toEqual([
      {
        model: 'small-fast',
        provider: 'p-openai',
        upstreamModel: 'gpt-4o-mini',
        timeoutMs: 0,
        maxRetries: 0,
        pricing: { inputPerMillionUsd: 0.15, outputPerMillionUsd: 0.6, cachedInputPerMillionUsd: 0.075, cacheWriteInputPerMillionUsd: 0.15 },
        tokenizer: Tokenizer.TOKENIZER_OPENAI,
        contextTokens: 128_000,
        maxOutputTokens: 16_384,
        demoted: '',
      },
    ]);
    expect(p?.guardrails).toEqual({
      maxPromptTokens: 100,
      allowedResponseFormats: [ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT, ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT],
      restrictTools: true,
      allowedTools: ['lookup_order'],
    });
    expect([p?.promptTokensMin, p?.promptTokensMax]).toEqual([0, 128_000]);
    const code = (await plan({ taskType: TaskType.TASK_TYPE_CODE, promptTokens: 20_000 })).plan;
    expect([code?.promptTokensMin, code?.promptTokensMax]).toEqual([16_001, 128_000]);
  });

  it('hot-reloads a changed policy and keeps it through a broken edit', async () => {
    await start({ logger: recordingLogger() });
    const first = await plan({});
    expect(first.plan?.attempts.map((a) => a.model)).toEqual(['small-fast', 'small-backup']);

    writeAtomically(path, testPolicyYaml('coder'));
    const changed = await eventually(() => plan({}), (r) => r.plan?.attempts[0]?.model === 'coder');
    expect(changed.plan?.attempts.map((a) => a.model)).toEqual(['coder', 'small-backup']);
    expect(logLines.some((l) => l.msg === 'config reloaded')).toBe(true);

    writeAtomically(path, testPolicyYaml('no-such-model'));
    const err = await eventually(errorLines, (lines) => lines.length > 0);
    expect(err).toHaveLength(1);
    expect(err[0]?.msg).toContain('unknown model "no-such-model"');
    expect(err[0]?.msg).toContain('keeping the previous config');
    const kept = await plan({});
    expect(kept.plan?.attempts.map((a) => a.model)).toEqual(['coder', 'small-backup']);

    writeAtomically(path, 'default_route: [unclosed');
    await eventually(() => errorLines().length, (n) => n >= 2);
    expect(errorLines()[1]?.msg).toContain('not valid YAML');
    expect((await plan({})).plan?.rule).toBe('default');
    expect((await plan({})).plan?.attempts[0]?.model).toBe('coder');
  });

  it('plans a model and a route added to the file without a restart, and refuses them once removed', async () => {
    await start();
    await expect(plan({ route: 'fresh-route' })).rejects.toMatchObject({ kind: 'invalid_argument', message: 'route: unknown route "fresh-route"' });

    writeAtomically(path, withNewRoute(testPolicyYaml()));
    const added = await eventually(
      () => plan({ route: 'fresh-route' }).catch(() => undefined),
      (r) => r !== undefined,
    );
    expect(added?.plan).toMatchObject({
      route: 'fresh-route',
      maxTokensCap: 300,
      defaultMaxTokens: 100,
      guardrails: { maxPromptTokens: 900 },
      attempts: [{ model: 'fresh-model', pricing: { inputPerMillionUsd: 3, outputPerMillionUsd: 9 }, tokenizer: Tokenizer.TOKENIZER_OPENAI, contextTokens: 32_000 }],
      promptTokensMax: 32_000,
    });
    expect((await plan({ model: 'fresh-model' })).plan?.attempts.map((a) => a.model)).toEqual(['fresh-model']);

    writeAtomically(path, testPolicyYaml());
    const removed = await eventually(
      () => plan({ route: 'fresh-route' }).then(() => undefined, (e: unknown) => e),
      (e) => e !== undefined,
    );
    expect(removed).toMatchObject({ kind: 'invalid_argument', message: 'route: unknown route "fresh-route"' });
    await expect(plan({ model: 'fresh-model' })).rejects.toMatchObject({ kind: 'invalid_argument', message: 'unknown model "fresh-model"' });
  });

  it('maps planner errors to gRPC statuses', async () => {
    await start();
    await expect(plan({ route: 'nope' })).rejects.toMatchObject({ kind: 'invalid_argument', message: 'route: unknown route "nope"' });
    await expect(plan({ model: 'large-reasoning' })).rejects.toMatchObject({
      kind: 'permission_denied',
      message: 'tenant acme may not use model large-reasoning',
    });
    await expect(plan({ tier: 'gold' })).rejects.toMatchObject({ kind: 'permission_denied' });
    const raw = await new Promise<number>((resolve) =>
      client!.planRoute(PlanRouteRequest.fromPartial({ tenantId: 'acme', tier: 'startup', route: 'nope' }), (e) => resolve(e?.code ?? 0)),
    );
    expect(raw).toBe(status.INVALID_ARGUMENT);
  });
});

describe('router config', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'router-config-'));
    path = join(dir, 'gateway.yaml');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('loads its sections of the file (the providers\' unset secrets are not its business) and POLICY_POLL_MS', () => {
    writeFileSync(path, testPolicyYaml());
    const cfg = loadRouterConfig(path, { POLICY_POLL_MS: '250' });
    expect(cfg.policyPollMs).toBe(250);
    expect(cfg.sections).toEqual(testPolicy());
    expect(loadRouterConfig(path, {}).policyPollMs).toBe(500);
  });

  it('names every problem of the file and the environment in one ConfigError', () => {
    writeFileSync(path, testPolicyYaml('no-such-model'));
    let err: unknown;
    try {
      loadRouterConfig(path, { POLICY_POLL_MS: 'soon' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems.some((p) => p.includes('unknown model "no-such-model"'))).toBe(true);
    expect(problems.some((p) => p.includes('POLICY_POLL_MS') && p.includes('"soon"'))).toBe(true);
  });

  it('is the service definition the runtime starts', () => {
    expect(routerService).toMatchObject({ name: 'router', needsRedis: false, loadConfig: loadRouterConfig, start: startRouter });
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
    running = await startRouter(routerDeps({ configPath: '/nonexistent/router-health-test.yaml', bus }));
    client = dial(RouterServiceClient, `127.0.0.1:${running.port}`);
    const plan = async (req: Partial<PlanRouteRequest> = {}) =>
      (await callUnary(client!.planRoute.bind(client!), PlanRouteRequest.fromPartial({ tenantId: 'acme', tier: 'startup', ...req }), { timeoutMs: 2_000 })).plan;

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

describe('router service and measured health', () => {
  it('demotes a model by the stats two executor replicas broadcast, counts it, and forgets a silent replica', async () => {
    const bus = new MemoryEventBus();
    const metrics = createMetrics('router', { defaultMetrics: false });
    const yaml = testPolicyYaml().replace(
      '    fallback_on: [timeout, http_5xx, http_429, connection_error]\n',
      '    fallback_on: [timeout, http_5xx, http_429, connection_error]\n    demote: { error_rate_above: 0.25, min_calls: 20 }\n',
    );
    const running = await startRouter({ ...routerDeps({ sections: parseRouterSections(yaml, 'r.yaml', {}), configPath: '/nonexistent/router-stats-test.yaml', bus }), metrics });
    const client = dial(RouterServiceClient, `127.0.0.1:${running.port}`);
    const plan = async () => (await callUnary(client.planRoute.bind(client), PlanRouteRequest.fromPartial({ tenantId: 'acme', tier: 'startup' }), { timeoutMs: 2_000 })).plan;
    const stats = (replicaId: string, models: Partial<ModelStats>[], intervalMs = 60_000) =>
      bus.broadcast(Subjects.backendStats, BackendStatsReport.encode(BackendStatsReport.fromPartial({ replicaId, windowMs: 60_000, intervalMs, occurredAt: new Date(), models })).finish());
    try {
      expect((await plan())?.attempts.map((a) => a.model)).toEqual(['small-fast', 'small-backup']);
      // Neither replica alone is over min_calls; together they are, at 30% errors.
      stats('executor-1', [{ model: 'small-fast', calls: 12, errors: 4, p95Ms: 300 }]);
      expect((await plan())?.attempts.map((a) => a.demoted)).toEqual(['', '']);
      // Short-lived: this replica's word lasts three of its 100 ms intervals.
      stats('executor-2', [{ model: 'small-fast', calls: 8, errors: 2, p95Ms: 500 }], 100);
      const demoted = await plan();
      expect(demoted?.attempts.map((a) => [a.model, a.demoted])).toEqual([
        ['small-backup', ''],
        ['small-fast', 'error rate 30% over 20 calls (above 25%)'],
      ]);
      expect(await metrics.registry.metrics()).toContain('llmgw_backend_demotions_total{route="support-chat",model="small-fast",reason="error_rate",service="router"} 1');
      // Garbage on the subject is dropped, not fatal.
      bus.broadcast(Subjects.backendStats, new Uint8Array([0xff, 0xff, 0xff]));
      const back = await eventually(plan, (p) => p?.attempts[0]?.model === 'small-fast', 2_000);
      expect(back?.attempts.map((a) => [a.model, a.demoted])).toEqual([
        ['small-fast', ''],
        ['small-backup', ''],
      ]);
    } finally {
      client.close();
      await running.close();
      await bus.close();
    }
  });
});

describe('ConfigWatcher over the Planner', () => {
  it('swaps the planner only on a parseable change; a bad edit or a missing file keeps the old policy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'router-watch-'));
    const path = join(dir, 'gateway.yaml');
    const errors: string[] = [];
    const logger = { info: () => undefined, error: (_o: object, msg: string) => errors.push(msg) };
    try {
      writeFileSync(path, testPolicyYaml('small-backup'));
      const w = new ConfigWatcher<Planner>(new Planner(testPolicy()), { path, parse: (text, source) => new Planner(parseRouterSections(text, source, {})), logger });
      const req = PlanRouteRequest.fromPartial({ tenantId: 'acme', tier: 'startup' });
      const before = w.current;
      expect(await w.reload()).toBe(true);
      expect(w.current).not.toBe(before);
      expect(w.current.plan(req).attempts[0]?.model).toBe('small-backup');
      expect(await w.reload()).toBe(false); // unchanged content

      // Valid YAML, but not a router config: no default route, no routes, models or tiers.
      writeFileSync(path, 'routes: {}');
      const good = w.current;
      expect(await w.reload()).toBe(false);
      expect(w.current).toBe(good);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain('keeping the previous config');
      expect(errors[0]).toContain('default_route');
      expect(w.current.plan(req).attempts[0]?.model).toBe('small-backup');

      rmSync(path);
      expect(await w.reload()).toBe(false);
      expect(w.current).toBe(good);
      expect(errors).toHaveLength(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
