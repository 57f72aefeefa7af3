import { Counter } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics, type Metrics } from './metrics.js';
import { usageMetrics, executorMetrics, quotaMetrics } from './domain.js';
import { startMetricsServer, type MetricsServer } from './server.js';

const servers: MetricsServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

function counter(m: Metrics, name: string): Counter {
  return new Counter({ name, help: 'test counter', registers: [m.registry] });
}

describe('metrics server', () => {
  it('answers GET /metrics with the registry in text format, including a counter just incremented', async () => {
    const m = createMetrics('quota');
    counter(m, 'test_things_total').inc(3);
    const server = await startMetricsServer(m.registry, 0, '127.0.0.1');
    servers.push(server);
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toMatch(/^test_things_total\{service="quota"\} 3$/m);
    // collectDefaultMetrics is on the service's registry.
    expect(text).toContain('process_cpu_user_seconds_total{service="quota"}');
  });

  it('answers 404 to any other path or method', async () => {
    const server = await startMetricsServer(createMetrics('edge', { defaultMetrics: false }).registry, 0, '127.0.0.1');
    servers.push(server);
    expect((await fetch(`http://127.0.0.1:${server.port}/`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${server.port}/metricsx`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: 'POST' })).status).toBe(404);
  });

  it('stops listening on close', async () => {
    const server = await startMetricsServer(createMetrics('edge', { defaultMetrics: false }).registry, 0, '127.0.0.1');
    await server.close();
    await expect(fetch(`http://127.0.0.1:${server.port}/metrics`)).rejects.toThrow();
  });
});

describe('per-service registries', () => {
  it('keep two services apart, even with the same metric names', async () => {
    const a = createMetrics('edge', { defaultMetrics: false });
    const b = createMetrics('quota', { defaultMetrics: false });
    counter(a, 'shared_name_total').inc(1);
    counter(b, 'shared_name_total').inc(5);
    quotaMetrics(b).decision('denied', 'tenant:requests_per_minute');
    const textA = await a.registry.metrics();
    const textB = await b.registry.metrics();
    expect(textA).toMatch(/^shared_name_total\{service="edge"\} 1$/m);
    expect(textA).not.toContain('service="quota"');
    expect(textA).not.toContain('llmgw_quota_decisions_total');
    expect(textB).toMatch(/^shared_name_total\{service="quota"\} 5$/m);
    expect(textB).toContain('llmgw_quota_decisions_total{decision="denied",limit="tenant:requests_per_minute",service="quota"} 1');
  });

  it('does not touch the prom-client global registry', async () => {
    const { register } = await import('prom-client');
    const before = (await register.getMetricsAsJSON()).length;
    const m = createMetrics('router');
    m.rpc.forMethod('PlanRoute').handled(0, 0.001);
    expect((await register.getMetricsAsJSON()).length).toBe(before);
  });

  it('registers each domain family once per registry (a second call returns the same recorder)', () => {
    const m = createMetrics('provider-executor', { defaultMetrics: false });
    expect(executorMetrics(m)).toBe(executorMetrics(m));
    expect(usageMetrics(m)).toBe(usageMetrics(m));
  });
});

describe('domain recorders', () => {
  it('edge: bounded outcomes, outbox gauge read on scrape and released on stop', async () => {
    const m = createMetrics('edge', { defaultMetrics: false });
    const e = usageMetrics(m);
    e.request('support-chat', 'ok');
    e.request('support-chat', 'something_new');
    let pending = 4;
    const stop = e.observeOutbox(() => pending);
    let text = await m.registry.metrics();
    expect(text).toContain('llmgw_requests_total{route="support-chat",outcome="ok",service="edge"} 1');
    expect(text).toContain('llmgw_requests_total{route="support-chat",outcome="error",service="edge"} 1');
    expect(text).toContain('llmgw_usage_outbox_pending{service="edge"} 4');
    pending = 2;
    expect(await m.registry.metrics()).toContain('llmgw_usage_outbox_pending{service="edge"} 2');
    stop();
    text = await m.registry.metrics();
    expect(text).toContain('llmgw_usage_outbox_pending{service="edge"} 0');
  });

  it('executor: attempts counted by labels, latency only for attempts that ran', async () => {
    const m = createMetrics('provider-executor', { defaultMetrics: false });
    const x = executorMetrics(m);
    x.attempt('openai', 'gpt-4o', 'failed', 'http_5xx', 0.2);
    x.attempt('openai', 'gpt-4o', 'skipped', 'unhealthy');
    const text = await m.registry.metrics();
    expect(text).toContain('llmgw_provider_attempts_total{provider="openai",model="gpt-4o",outcome="failed",reason="http_5xx",service="provider-executor"} 1');
    expect(text).toContain('llmgw_provider_attempts_total{provider="openai",model="gpt-4o",outcome="skipped",reason="unhealthy",service="provider-executor"} 1');
    expect(text).toContain('llmgw_provider_attempt_seconds_count{service="provider-executor",provider="openai"} 1');
  });
});
