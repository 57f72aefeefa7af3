import { status as grpcStatus, type sendUnaryData, type Server, type ServerUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { quoted } from '@llmgw/errors';

export type ServingStatus = 'SERVING' | 'NOT_SERVING';
type Reported = ServingStatus | 'SERVICE_UNKNOWN';

/**
 * grpc.health.v1 for a fixed set of service names ('' is the whole server). Unlike
 * grpc-health-check's implementation, an unknown name is answered without being remembered
 * (its Watch would keep a watcher set per name ever asked) and NOT_FOUND quotes it bounded.
 */
export class HealthStatus {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<(s: ServingStatus) => void>>();

  constructor(serviceNames: readonly string[], initial: ServingStatus) {
    for (const name of ['', ...serviceNames]) {
      this.statuses.set(name, initial);
      this.watchers.set(name, new Set());
    }
  }

  setStatus(service: string, status: ServingStatus): void {
    if (!this.statuses.has(service)) throw new Error(`health: ${service} is not served here`);
    this.statuses.set(service, status);
    for (const w of this.watchers.get(service)!) w(status);
  }

  addToServer(server: Server): void {
    server.addService(healthService, {
      check: (call: ServerUnaryCall<{ service: string }, unknown>, callback: sendUnaryData<{ status: Reported }>) => {
        const status = this.statuses.get(call.request.service);
        if (status) callback(null, { status });
        else callback({ code: grpcStatus.NOT_FOUND, details: `unknown service ${quoted(call.request.service)}` });
      },
      watch: (call: ServerWritableStream<{ service: string }, { status: Reported }>) => {
        const watchers = this.watchers.get(call.request.service);
        // The protocol keeps a Watch of an unknown service open, reporting SERVICE_UNKNOWN.
        if (!watchers) return void call.write({ status: 'SERVICE_UNKNOWN' });
        const watcher = (status: ServingStatus) => call.write({ status });
        watchers.add(watcher);
        call.on('cancelled', () => watchers.delete(watcher));
        call.write({ status: this.statuses.get(call.request.service)! });
      },
      list: (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<{ statuses: Record<string, { status: ServingStatus }> }>) => {
        callback(null, { statuses: Object.fromEntries([...this.statuses].map(([name, status]) => [name, { status }])) });
      },
    });
  }
}
