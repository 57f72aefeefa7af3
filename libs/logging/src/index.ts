import { context, trace } from '@opentelemetry/api';
import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths pino replaces with "[redacted]". Prompts, completions, keys and authorization headers
 * never reach a log line; log sizes and counts instead.
 */
export const REDACT_PATHS = [
  'apiKey',
  'api_key',
  'authorization',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers["api-key"]',
  'headers["x-goog-api-key"]',
  'metadata.authorization',
  'key',
  'secret',
  'messages',
  'prompt',
  'content',
  '*.apiKey',
  '*.api_key',
  '*.authorization',
  '*.messages',
  '*.content',
];

export interface CreateLoggerOptions {
  service: string;
  level?: string;
  destination?: DestinationStream;
}

const NO_FIELDS = Object.freeze({});

/**
 * `trace_id` and `span_id` (the OpenTelemetry log field names) of the span active when a line is
 * written; nothing outside a span, or when tracing is off (the API's no-op context is empty).
 */
export function traceFields(): Record<string, string> {
  const sc = trace.getSpan(context.active())?.spanContext();
  return sc && trace.isSpanContextValid(sc) ? { trace_id: sc.traceId, span_id: sc.spanId } : NO_FIELDS;
}

/** pino's own merge writes the line's fields into the mixin's object: never into the shared empty one. */
function mergeTraceFields(line: object, fields: object): object {
  return fields === NO_FIELDS ? line : Object.assign(fields, line);
}

export function createLogger(opts: CreateLoggerOptions): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? 'info',
    base: { service: opts.service },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: traceFields,
    mixinMergeStrategy: mergeTraceFields,
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** A logger that writes nothing, for tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
