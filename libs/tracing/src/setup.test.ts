import { createServer } from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@llmgw/config';
import { inSpan, SpanKind, startTracing, tracingEnv, tracingOn } from './index.js';

describe('tracing from the OTEL_* variables', () => {
  it('is off by default, and with OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none', () => {
    for (const env of [{}, { OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }]) {
      expect(startTracing('svc', tracingEnv(env)).enabled).toBe(false);
      expect(tracingOn()).toBe(false);
    }
  });

  it('names every bad variable at once', () => {
    const bad = () => tracingEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_TRACES_SAMPLER: 'sometimes', OTEL_TRACES_SAMPLER_ARG: '2', OTEL_BSP_SCHEDULE_DELAY: 'soon' });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/OTEL_EXPORTER_OTLP_PROTOCOL: expected one of http\/protobuf, http\/json.*OTEL_TRACES_SAMPLER: expected one of.*OTEL_TRACES_SAMPLER_ARG: expected a ratio from 0 to 1.*OTEL_BSP_SCHEDULE_DELAY/s);
  });

  it('reports an export that failed, and does not hold up shutdown for long', async () => {
    const warnings: string[] = [];
    // The exporters read their own variables (timeout, headers, ...) from the process environment.
    process.env.OTEL_EXPORTER_OTLP_TIMEOUT = '300';
    try {
      const tracing = startTracing('svc', tracingEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' }), (m) => warnings.push(m));
      await inSpan('work', SpanKind.INTERNAL, {}, async () => undefined);
      const started = Date.now();
      await tracing.shutdown();
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      delete process.env.OTEL_EXPORTER_OTLP_TIMEOUT;
    }
    expect(warnings.join('\n')).toMatch(/ECONNREFUSED|export/i);
  });

  describe('with an OTLP endpoint', () => {
    const received: { path: string; type: string; service: boolean }[] = [];
    const collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ path: req.url ?? '', type: req.headers['content-type'] ?? '', service: Buffer.concat(chunks).includes('svc-from-env') });
        res.writeHead(200).end();
      });
    });
    afterAll(() => new Promise<void>((r) => collector.close(() => r())));

    it('exports spans in OTLP/HTTP protobuf (the default protocol) under OTEL_SERVICE_NAME', async () => {
      await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
      const { port } = collector.address() as { port: number };
      const endpoint = `http://127.0.0.1:${port}`;
      process.env.OTEL_SERVICE_NAME = 'svc-from-env';
      process.env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint;
      try {
        const tracing = startTracing('svc', tracingEnv(process.env));
        expect(tracing.enabled).toBe(true);
        expect(tracingOn()).toBe(true);
        await inSpan('work', SpanKind.INTERNAL, {}, async () => undefined);
        await tracing.shutdown();
        expect(tracingOn()).toBe(false);
      } finally {
        delete process.env.OTEL_SERVICE_NAME;
        delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      }
      expect(received).toEqual([{ path: '/v1/traces', type: 'application/x-protobuf', service: true }]);
    });
  });
});
