import { Counter, Histogram, type Registry } from 'prom-client';

/** 0.5 ms to 30 s. */
export const RPC_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** gRPC status names by code (label values of grpc_server_handled_total). */
const CODE_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

export function grpcCodeName(code: number): string {
  return CODE_NAMES[code] ?? 'UNKNOWN';
}

/** Records one finished call of a method: its gRPC status code and handling time. */
export interface RpcMethodRecorder {
  handled(code: number, seconds: number): void;
}

/**
 * grpc_server_handled_total{method, code} and grpc_server_handling_seconds{method}. Structurally
 * matches the `RpcMetricsHook` of @llmgw/grpc: the adapters call forMethod once when the handler
 * is built, so a call costs two cached-child updates and no label hashing.
 */
export class RpcMetrics {
  private readonly handledTotal: Counter<'method' | 'code'>;
  private readonly seconds: Histogram<'method'>;

  constructor(registry: Registry) {
    this.handledTotal = new Counter({
      name: 'grpc_server_handled_total',
      help: 'RPCs completed on the server, by method and gRPC status code.',
      labelNames: ['method', 'code'],
      registers: [registry],
    });
    this.seconds = new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Time from receiving an RPC to its final status, by method.',
      labelNames: ['method'],
      buckets: RPC_SECONDS_BUCKETS,
      registers: [registry],
    });
  }

  forMethod(method: string): RpcMethodRecorder {
    const latency = this.seconds.labels(method);
    const byCode: Array<{ inc(): void } | undefined> = [];
    // The OK series exists from the start, so rates and ratios have a zero to work with.
    const ok = this.handledTotal.labels(method, 'OK');
    ok.inc(0);
    byCode[0] = ok;
    return {
      handled: (code, seconds) => {
        let c = byCode[code];
        if (!c) {
          c = this.handledTotal.labels(method, grpcCodeName(code));
          byCode[code] = c;
        }
        c.inc();
        latency.observe(seconds);
      },
    };
  }
}
