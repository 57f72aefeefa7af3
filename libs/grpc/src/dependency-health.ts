import type { Logger } from '@llmgw/logging';
import type { GrpcServer } from './server.js';

/**
 * A service's health for the things it cannot work without (Redis, a JetStream consumer): the
 * service's own name is NOT_SERVING while any of them is down, SERVING once all are back. The
 * overall "" status is left alone, because restarting the process would not help (clients
 * reconnect on their own) and the documented degraded policy still answers calls.
 */
export class DependencyHealth {
  private readonly down = new Set<string>();
  private bound = false;
  private closing = false;

  constructor(
    private readonly g: GrpcServer,
    private readonly serviceName: string,
    private readonly logger: Logger,
  ) {}

  /** Not there yet at start (a consumer still connecting): NOT_SERVING, without a warning. */
  waitFor(dependency: string): void {
    this.down.add(dependency);
    this.apply();
  }

  set(dependency: string, up: boolean): void {
    if (this.closing || up === !this.down.has(dependency)) return;
    if (up) this.down.delete(dependency);
    else this.down.add(dependency);
    if (up) this.logger.info({ dependency }, `${dependency} available again`);
    else this.logger.warn({ dependency }, `${dependency} unavailable: ${this.serviceName} NOT_SERVING until it is back`);
    this.apply();
  }

  /** listen() reports every service SERVING; this puts the dependencies' state back (call after it). */
  listening(): void {
    this.bound = true;
    this.apply();
  }

  /** What is down now, for logs and tests. */
  unavailable(): string[] {
    return [...this.down];
  }

  /** After drain has set NOT_SERVING, a recovering dependency must not flip it back. */
  close(): void {
    this.closing = true;
  }

  private apply(): void {
    if (this.bound && !this.closing) this.g.health.setStatus(this.serviceName, this.down.size === 0 ? 'SERVING' : 'NOT_SERVING');
  }
}
