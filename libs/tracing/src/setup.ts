import { context, diag, DiagLogLevel, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { envBool, envEnum, envInt, parseEnv } from '@llmgw/config';
import { z } from 'zod';
import { install } from './state.js';

const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;

/**
 * The standard OpenTelemetry variables this process reads. Tracing is off unless an exporter is
 * named (OTEL_TRACES_EXPORTER) or an OTLP endpoint is set; the exporters read the rest of theirs
 * (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE ...) themselves.
 */
export const tracingEnvSchema = z.object({
  OTEL_SDK_DISABLED: envBool(false),
  OTEL_TRACES_EXPORTER: envEnum(['otlp', 'console', 'none']).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.string().optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.string().optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: envEnum(['http/protobuf', 'http/json']).optional(),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: envEnum(['http/protobuf', 'http/json']).optional(),
  OTEL_TRACES_SAMPLER: envEnum(SAMPLERS, 'parentbased_always_on'),
  OTEL_TRACES_SAMPLER_ARG: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined) return 1;
      const n = Number(raw);
      if (!Number.isFinite(n) || n < 0 || n > 1) {
        ctx.addIssue({ code: 'custom', message: `expected a ratio from 0 to 1, got ${JSON.stringify(raw)}` });
        return z.NEVER;
      }
      return n;
    }),
  OTEL_BSP_SCHEDULE_DELAY: envInt({ min: 0, default: 5_000 }),
  OTEL_BSP_EXPORT_TIMEOUT: envInt({ min: 1, default: 30_000 }),
  OTEL_BSP_MAX_QUEUE_SIZE: envInt({ min: 1, default: 2_048 }),
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: envInt({ min: 1, default: 512 }),
});

export type TracingEnv = z.output<typeof tracingEnvSchema>;

/** Which exporter the environment asks for; 'none' leaves tracing off. */
function exporterOf(v: TracingEnv): 'otlp' | 'console' | 'none' {
  if (v.OTEL_SDK_DISABLED) return 'none';
  if (v.OTEL_TRACES_EXPORTER) return v.OTEL_TRACES_EXPORTER;
  return v.OTEL_EXPORTER_OTLP_ENDPOINT || v.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? 'otlp' : 'none';
}

function samplerOf(v: TracingEnv): Sampler {
  const ratio = new TraceIdRatioBasedSampler(v.OTEL_TRACES_SAMPLER_ARG);
  switch (v.OTEL_TRACES_SAMPLER) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio;
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio });
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

/** What a process started; `enabled` false is the no-op tracer: spans cost nothing and go nowhere. */
export interface Tracing {
  enabled: boolean;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

const OFF: Tracing = { enabled: false, shutdown: async () => undefined };

/** The OTEL_* variables, checked (a bad value is a ConfigError naming it). */
export function tracingEnv(env: NodeJS.ProcessEnv = process.env): TracingEnv {
  return parseEnv(tracingEnvSchema, env);
}

/** How long shutdown waits for the last export (a collector that is down must not hold up a drain). */
const SHUTDOWN_WAIT_MS = 5_000;

/**
 * Sets up this process's tracing from the OTEL_* variables (tracingEnv): off (the API's no-op
 * tracer) unless they name an exporter. `serviceName` is the resource's service.name unless
 * OTEL_SERVICE_NAME says otherwise; OTEL_RESOURCE_ATTRIBUTES adds to it. Call it before the
 * process dials or serves anything. `warn` is told what the SDK reports (an export that failed).
 */
export function startTracing(serviceName: string, v: TracingEnv, warn?: (message: string) => void): Tracing {
  const exporter = exporterOf(v);
  if (exporter === 'none') return OFF;
  if (warn) {
    const report = (message: string, ...args: unknown[]) => warn([message, ...args.map((a) => (a instanceof Error ? a.message : String(a)))].join(' '));
    diag.setLogger({ error: report, warn: report, info: () => undefined, debug: () => undefined, verbose: () => undefined }, DiagLogLevel.WARN);
  }
  const protocol = v.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? v.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
  // The URL that turned tracing on is the one exported to; headers, timeout and TLS files the
  // exporter reads from the process environment itself.
  const url = v.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (v.OTEL_EXPORTER_OTLP_ENDPOINT ? `${v.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces` : undefined);
  const spanExporter = exporter === 'console' ? new ConsoleSpanExporter() : protocol === 'http/json' ? new OtlpJsonExporter({ url }) : new OtlpProtoExporter({ url });
  const processor = new BatchSpanProcessor({
    exporter: spanExporter,
    scheduledDelayMillis: v.OTEL_BSP_SCHEDULE_DELAY,
    exportTimeoutMillis: v.OTEL_BSP_EXPORT_TIMEOUT,
    maxQueueSize: v.OTEL_BSP_MAX_QUEUE_SIZE,
    maxExportBatchSize: v.OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
  });
  return installTracing({ serviceName, processors: [processor], sampler: samplerOf(v) });
}

export interface InstallOptions {
  serviceName: string;
  processors: SpanProcessor[];
  sampler?: Sampler;
}

/**
 * Registers a tracer provider, the W3C trace-context propagator and an AsyncLocalStorage context
 * manager as the process's globals. startTracing calls it; tests call it with an in-memory exporter.
 */
export function installTracing(opts: InstallOptions): Tracing {
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': opts.serviceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new TracerProvider({ resource, spanProcessors: opts.processors, sampler: opts.sampler ?? new ParentBasedSampler({ root: new AlwaysOnSampler() }) });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  install(provider.getTracer('llm-gateway'));
  return {
    enabled: true,
    shutdown: async () => {
      let timer: NodeJS.Timeout | undefined;
      // A last export that failed has been reported (diag); stopping goes on.
      const exported = provider.shutdown().catch((err: unknown) => diag.error('the last export failed', err));
      await Promise.race([exported, new Promise((r) => (timer = setTimeout(r, SHUTDOWN_WAIT_MS)))]);
      clearTimeout(timer);
      install(undefined);
      trace.disable();
      propagation.disable();
      context.disable();
      diag.disable();
    },
  };
}
