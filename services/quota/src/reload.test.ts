import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callUnary, dial } from '@llmgw/grpc';
import { MemoryEventBus } from '@llmgw/events';
import { silentLogger } from '@llmgw/logging';
import { QuotaDecision, QuotaServiceClient } from '@llmgw/proto/quota';
import { addrsFromEnv, type RunningService } from '@llmgw/runtime';
import { loadQuotaConfig, startQuota } from './index.js';

const file = (tenants: string, quota = '') => `
# other services' sections are ignored by quota
providers: { p: { kind: openai, base_url: "http://127.0.0.1:1/v1", api_key: "\${NOT_SET_FOR_QUOTA}" } }
tiers:
  free: { limits: { requests_per_minute: 2 } }
tenants:
${tenants}
${quota}
`;

/** Quota's sections are hot-reloaded from the file: tenants, tiers' limits, the quota policy. */
describe('quota hot reload (memory store, temp config file)', () => {
  let dir: string;
  let path: string;
  let svc: RunningService;
  let client: QuotaServiceClient;
  let bus: MemoryEventBus;
  let seq = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'llmgw-quota-reload-'));
    path = join(dir, 'gateway.yaml');
    writeFileSync(path, file('  acme: { tier: free }'));
    bus = new MemoryEventBus();
    svc = await startQuota({
      config: { ...loadQuotaConfig(path, { QUOTA_CONFIG_POLL_MS: '25' }) },
      configPath: path,
      logger: silentLogger(),
      listenAddr: '127.0.0.1:0',
      addrs: addrsFromEnv({}),
      bus,
      drainMs: 0,
      env: {},
    });
    client = dial(QuotaServiceClient, `127.0.0.1:${svc.port}`);
  });
  afterAll(async () => {
    client.close();
    await svc.close();
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const reserve = (tenantId: string) =>
    callUnary(
      client.reserveQuota.bind(client),
      { requestId: `h${++seq}`, tenantId, tier: '', route: 'support-chat', model: 'm', estimatedTokens: 10, estimatedCostMicros: 10 },
      { timeoutMs: 2_000 },
    );
  const eventually = async (what: string, cond: () => Promise<boolean>) => {
    const end = Date.now() + 5_000;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error(`${what}: not within 5 s`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const rewrite = async (text: string) => {
    await new Promise((r) => setTimeout(r, 30)); // a distinct mtime for the poller
    writeFileSync(path, text);
  };

  it('loadQuotaConfig takes the poll interval from QUOTA_CONFIG_POLL_MS, else POLICY_POLL_MS, else 500', () => {
    expect(loadQuotaConfig(path, { QUOTA_CONFIG_POLL_MS: '25', POLICY_POLL_MS: '900' }).pollMs).toBe(25);
    expect(loadQuotaConfig(path, { POLICY_POLL_MS: '900' }).pollMs).toBe(900);
    expect(loadQuotaConfig(path, {})).toMatchObject({ pollMs: 500, redisTimeoutMs: 100 });
    expect(() => loadQuotaConfig(path, { QUOTA_REDIS_TIMEOUT_MS: 'fast' })).toThrow('QUOTA_REDIS_TIMEOUT_MS: expected a non-negative integer, got "fast"');
  });

  it('a tenant added to the file is admitted without a restart', async () => {
    await expect(reserve('newco')).rejects.toMatchObject({ kind: 'not_found' });
    await rewrite(file('  acme: { tier: free }\n  newco: { tier: free, limits: { requests_per_minute: 1 } }'));
    await eventually('newco admitted', async () => (await reserve('newco').catch(() => undefined))?.decision === QuotaDecision.QUOTA_DECISION_ALLOWED);
    expect(await reserve('newco')).toMatchObject({ decision: QuotaDecision.QUOTA_DECISION_DENIED, limit: 'tenant:requests_per_minute', limitValue: 1 });
  });

  it('a lowered tier limit applies within the poll interval; a bad edit keeps the previous sections', async () => {
    expect((await reserve('acme')).decision).toBe(QuotaDecision.QUOTA_DECISION_ALLOWED); // 1 of 2
    await rewrite(file('  acme: { tier: free }\n  newco: { tier: free, limits: { requests_per_minute: 1 } }').replace('requests_per_minute: 2', 'requests_per_minute: 1'));
    await eventually('acme at 1/min', async () => (await reserve('acme')).limitValue === 1);
    expect(await reserve('acme')).toMatchObject({ decision: QuotaDecision.QUOTA_DECISION_DENIED, limit: 'tenant:requests_per_minute', limitValue: 1 });

    await rewrite(file('  acme: { tier: gold }'));
    await new Promise((r) => setTimeout(r, 200));
    // still the previous sections: newco known, acme on the free tier at 1/min
    expect(await reserve('newco')).toMatchObject({ decision: QuotaDecision.QUOTA_DECISION_DENIED, limit: 'tenant:requests_per_minute' });
    expect(await reserve('acme')).toMatchObject({ limitValue: 1 });
  });

  it('a tenant removed from the file is refused', async () => {
    await rewrite(file('  acme: { tier: free }'));
    await eventually('newco gone', async () => (await reserve('newco').then(() => false, (err: { kind?: string }) => err.kind === 'not_found')));
  });
});
