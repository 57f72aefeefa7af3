import { EventEmitter } from 'node:events';
import type { EventBus, EventHandler } from './bus.js';

interface Durable {
  handlers: EventHandler[];
  next: number;
  queue: { data: Uint8Array; redelivered: boolean }[];
  running: boolean;
}

/**
 * The monolithic mode's bus: same contract as JetStream (dedup by msgId, at-least-once per
 * durable, redelivery on failure), kept in this process's memory.
 */
export class MemoryEventBus implements EventBus {
  private readonly seen = new Map<string, number>();
  private readonly log = new Map<string, Uint8Array[]>();
  private readonly durables = new Map<string, Durable>();
  private readonly emitter = new EventEmitter();
  private closed = false;

  constructor(
    private readonly opts: { dedupWindowMs?: number; redeliverDelayMs?: number; now?: () => number } = {},
  ) {
    this.emitter.setMaxListeners(0);
  }

  async publish(subject: string, data: Uint8Array, msgId: string): Promise<void> {
    if (this.closed) throw new Error('event bus closed');
    const now = (this.opts.now ?? Date.now)();
    const key = `${subject}\u0000${msgId}`;
    const seenAt = this.seen.get(key);
    if (seenAt !== undefined && now - seenAt < (this.opts.dedupWindowMs ?? 120_000)) return;
    this.seen.set(key, now);
    if (this.seen.size > 100_000) this.expireSeen(now);
    const events = this.log.get(subject) ?? [];
    events.push(data);
    // Kept only so that a consumer created later sees earlier events, as with JetStream; bounded.
    if (events.length > 10_000) events.shift();
    this.log.set(subject, events);
    for (const [name, durable] of this.durables) {
      if (name.startsWith(`${subject}\u0000`)) this.enqueue(durable, data, false);
    }
  }

  async consume(subject: string, durableName: string, handler: EventHandler): Promise<() => Promise<void>> {
    const key = `${subject}\u0000${durableName}`;
    let durable = this.durables.get(key);
    if (!durable) {
      durable = { handlers: [], next: 0, queue: [], running: false };
      this.durables.set(key, durable);
      for (const data of this.log.get(subject) ?? []) durable.queue.push({ data, redelivered: false });
    }
    durable.handlers.push(handler);
    const d = durable;
    this.drain(d);
    return async () => {
      d.handlers = d.handlers.filter((h) => h !== handler);
    };
  }

  broadcast(subject: string, data: Uint8Array): void {
    this.emitter.emit(subject, data);
  }

  onBroadcast(subject: string, handler: (data: Uint8Array) => void): () => void {
    this.emitter.on(subject, handler);
    return () => this.emitter.off(subject, handler);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.emitter.removeAllListeners();
  }

  private enqueue(durable: Durable, data: Uint8Array, redelivered: boolean): void {
    durable.queue.push({ data, redelivered });
    this.drain(durable);
  }

  private drain(durable: Durable): void {
    if (durable.running || durable.handlers.length === 0) return;
    durable.running = true;
    queueMicrotask(async () => {
      while (durable.queue.length > 0 && durable.handlers.length > 0 && !this.closed) {
        const item = durable.queue.shift()!;
        const handler = durable.handlers[durable.next++ % durable.handlers.length]!;
        try {
          await handler(item.data, { redelivered: item.redelivered });
        } catch {
          setTimeout(() => this.enqueue(durable, item.data, true), this.opts.redeliverDelayMs ?? 500).unref();
        }
      }
      durable.running = false;
    });
  }

  private expireSeen(now: number): void {
    const window = this.opts.dedupWindowMs ?? 120_000;
    for (const [k, at] of this.seen) if (now - at >= window) this.seen.delete(k);
  }
}
