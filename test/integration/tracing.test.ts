import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Metadata, ServiceError, StatusObject } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, programArgs, REPO_ROOT } from '@llmgw/local-infra';
import { ADDR_ENV, SERVICE_NAMES } from '@llmgw/runtime';
import type { ChatResponse } from '@llmgw/proto/v1';
import { bearer, eventually, KEYS, startTestMesh, TEST_CONFIG, userChat, type TestMesh } from '../src/harness.js';
import { OtlpKind, startOtlpCollector, type CollectedSpan, type OtlpCollector } from '../src/otlp-collector.js';

const USAGE_SUBJECT = 'llmgateway.usage.v1.recorded';

let collector: OtlpCollector;
let mesh: TestMesh;

beforeAll(async () => {
  collector = await startOtlpCollector();
  // The standard variables only: export to an OTLP/HTTP collector with JSON bodies, in batches of 50 ms.
  mesh = await startTestMesh(TEST_CONFIG, {
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '50',
  });
}, 60_000);
afterAll(async () => {
  await mesh?.stop();
  await collector?.close();
});

function chatWithTrailers(key: string, content: string): Promise<{ res: ChatResponse; trailers: Metadata }> {
  return new Promise((resolve, reject) => {
    let res: ChatResponse | undefined;
    const call = mesh.gateway.chat(userChat(content), bearer(key), { deadline: Date.now() + 15_000 }, (err: ServiceError | null, r: ChatResponse) => {
      if (err) reject(err);
      else res = r;
    });
    call.on('status', (st: StatusObject) => setImmediate(() => res && resolve({ res, trailers: st.metadata })));
  });
}

const inTrace = (traceId: string) => collector.spans.filter((s) => s.traceId === traceId);

/** The trace's spans once the accountant has processed the request's usage event (the last hop). */
async function traceOf(traceId: string, until: (spans: CollectedSpan[]) => boolean): Promise<CollectedSpan[]> {
  return eventually(async () => inTrace(traceId), until, 15_000);
}

function one(spans: CollectedSpan[], service: string, name: string, kind: number): CollectedSpan {
  const found = spans.filter((s) => s.service === service && s.name === name && s.kind === kind);
  expect(found, `${service}: ${name}`).toHaveLength(1);
  return found[0]!;
}

function logLines(service: string): Record<string, unknown>[] {
  return readFileSync(join(mesh.logDir, `${service}.log`), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const accountantDone = (spans: CollectedSpan[]) => spans.some((s) => s.service === 'usage-accountant' && s.name === `process ${USAGE_SUBJECT}`);

describe('OpenTelemetry traces through the mesh (OTLP export)', () => {
  it('makes one trace of a request: a span for every hop, the provider call with its GenAI attributes, the usage event to the accountant', async () => {
    // The mesh's first request: nothing is cached yet, so the edge asks auth and the router.
    const { res, trailers } = await chatWithTrailers(KEYS.enterprise, 'What is the capital of France?');
    const [traceId] = trailers.get('x-trace-id') as string[];
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    const spans = await traceOf(traceId!, accountantDone);

    expect(new Set(spans.map((s) => s.service))).toEqual(new Set(SERVICE_NAMES));
    const chat = one(spans, 'edge', 'llmgateway.v1.GatewayService/Chat', OtlpKind.SERVER);
    expect(chat.parentSpanId).toBe('');
    expect(chat.attributes).toMatchObject({ 'rpc.system': 'grpc', 'rpc.service': 'llmgateway.v1.GatewayService', 'rpc.method': 'Chat', 'rpc.grpc.status_code': 0 });
    // Each hop: the edge's CLIENT span, under its Chat span, and the callee's SERVER span under that.
    for (const [service, path] of [
      ['auth', 'llmgateway.auth.v1.AuthService/Authenticate'],
      ['router', 'llmgateway.router.v1.RouterService/PlanRoute'],
      ['quota', 'llmgateway.quota.v1.QuotaService/ReserveQuota'],
      ['provider-executor', 'llmgateway.executor.v1.ExecutorService/ExecuteChat'],
    ] as const) {
      const client = one(spans, 'edge', path, OtlpKind.CLIENT);
      expect(client.parentSpanId, path).toBe(chat.spanId);
      expect(one(spans, service, path, OtlpKind.SERVER).parentSpanId, path).toBe(client.spanId);
    }

    const execute = one(spans, 'provider-executor', 'llmgateway.executor.v1.ExecutorService/ExecuteChat', OtlpKind.SERVER);
    const provider = one(spans, 'provider-executor', 'chat gpt-4o-mini', OtlpKind.CLIENT);
    expect(provider.parentSpanId).toBe(execute.spanId);
    expect(provider.attributes).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': res.provider,
      'gen_ai.request.model': 'gpt-4o-mini',
      'gen_ai.response.model': 'gpt-4o-mini',
      'gen_ai.usage.input_tokens': res.usage!.inputTokens,
      'gen_ai.usage.output_tokens': res.usage!.outputTokens,
      'gen_ai.response.finish_reasons': ['stop'],
    });

    // The usage event: published in the executor's trace, processed by the accountant (and quota) as its child.
    const send = one(spans, 'provider-executor', `send ${USAGE_SUBJECT}`, OtlpKind.PRODUCER);
    expect(send.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.message.id': res.id });
    expect(one(spans, 'usage-accountant', `process ${USAGE_SUBJECT}`, OtlpKind.CONSUMER).parentSpanId).toBe(send.spanId);

    // One tree: every parent is a span of the trace.
    const ids = new Set(spans.map((s) => s.spanId));
    for (const s of spans) if (s !== chat) expect(ids.has(s.parentSpanId), `${s.service}: ${s.name}`).toBe(true);

    // Log lines of the request carry its trace: the edge's access line, and every line naming the request.
    const lines = SERVICE_NAMES.flatMap((s) => logLines(s)).filter((l) => l.requestId === res.id);
    expect(lines.find((l) => l.msg === 'access')).toMatchObject({ trace_id: traceId, span_id: chat.spanId });
    for (const l of lines) expect(l, String(l.msg)).toHaveProperty('trace_id', traceId);
  });

  it('traces the HTTP surface, returns the trace id in a header, and gives each fallback attempt its own provider span', async () => {
    const r = await fetch(`${mesh.httpBaseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.enterprise}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'fallback', messages: [{ role: 'user', content: 'hello' }] }),
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    const traceId = r.headers.get('x-trace-id');
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    const spans = await traceOf(traceId!, accountantDone);

    const post = one(spans, 'edge', 'POST /v1/chat/completions', OtlpKind.SERVER);
    expect(post.parentSpanId).toBe('');
    expect(post.attributes).toMatchObject({ 'http.request.method': 'POST', 'http.route': '/v1/chat/completions', 'http.response.status_code': 200 });
    const failed = one(spans, 'provider-executor', 'chat gpt-4o-mini-fail-500', OtlpKind.CLIENT);
    expect(failed.attributes).toMatchObject({ 'gen_ai.request.model': 'gpt-4o-mini-fail-500', 'error.type': 'http_5xx' });
    const answered = one(spans, 'provider-executor', 'chat gpt-4o-mini', OtlpKind.CLIENT);
    expect(answered.attributes).toMatchObject({ 'gen_ai.usage.output_tokens': body.usage.completion_tokens, 'gen_ai.response.finish_reasons': ['stop'] });
    expect(answered.attributes).not.toHaveProperty('error.type');
    expect(failed.parentSpanId).toBe(answered.parentSpanId);
  });

  it('keeps prompts and keys out of span attributes', () => {
    const values = collector.spans.flatMap((s) => Object.values(s.attributes).flat().map(String));
    for (const secret of ['capital of France', KEYS.enterprise, 'sim-key']) expect(values.some((v) => v.includes(secret)), secret).toBe(false);
  });
});

describe('OpenTelemetry traces in monolithic mode (npm start without Redis and NATS)', () => {
  it('traces the six services of the one process as llm-gateway, the in-memory usage event included', async () => {
    const httpAddr = `127.0.0.1:${await freePort()}`;
    const env: Record<string, string> = {
      LLMGW_MODE: 'monolith',
      GATEWAY_CONFIG: TEST_CONFIG,
      SIMULATOR_PORT: String(await freePort()),
      EDGE_HTTP_ADDR: httpAddr,
      ACCOUNTANT_HTTP_ADDR: 'off',
      LOG_LEVEL: 'warn',
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '50',
    };
    for (const n of SERVICE_NAMES) env[ADDR_ENV[n]] = `127.0.0.1:${await freePort()}`;
    const child = spawn(process.execPath, programArgs('tools/launcher/src/main.ts'), { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += String(d);
          if (out.includes('Ctrl-C stops everything.')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`npm start exited (${code}):\n${out}`)));
      });
      const r = await fetch(`http://${httpAddr}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEYS.enterprise}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'hello' }] }),
      });
      expect(r.status).toBe(200);
      const traceId = r.headers.get('x-trace-id')!;
      const spans = await traceOf(traceId, (all) => all.filter((s) => s.name === `process ${USAGE_SUBJECT}`).length >= 2);
      expect(new Set(spans.map((s) => s.service))).toEqual(new Set(['llm-gateway']));
      const post = one(spans, 'llm-gateway', 'POST /v1/chat/completions', OtlpKind.SERVER);
      for (const path of ['llmgateway.auth.v1.AuthService/Authenticate', 'llmgateway.router.v1.RouterService/PlanRoute', 'llmgateway.quota.v1.QuotaService/ReserveQuota', 'llmgateway.executor.v1.ExecutorService/ExecuteChat']) {
        const client = one(spans, 'llm-gateway', path, OtlpKind.CLIENT);
        expect(client.parentSpanId, path).toBe(post.spanId);
        expect(one(spans, 'llm-gateway', path, OtlpKind.SERVER).parentSpanId, path).toBe(client.spanId);
      }
      expect(one(spans, 'llm-gateway', 'chat gpt-4o-mini', OtlpKind.CLIENT).attributes).toMatchObject({ 'gen_ai.request.model': 'gpt-4o-mini', 'gen_ai.provider.name': 'sim-openai' });
      const send = one(spans, 'llm-gateway', `send ${USAGE_SUBJECT}`, OtlpKind.PRODUCER);
      // The accountant and quota's reconciler each process it.
      expect(spans.filter((s) => s.name === `process ${USAGE_SUBJECT}`).map((s) => s.parentSpanId)).toEqual([send.spanId, send.spanId]);
    } finally {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    }
  }, 60_000);
});
