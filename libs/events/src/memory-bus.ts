import { EventEmitter } from 'node:events';
import type { Logger } from '@llmgw/logging';
import { recordCarrier, tracingOn } from '@llmgw/tracing';
import { deadLetterReason, errorText, type ConsumeOptions, type DeadLetter, type EventBus, type EventHandler } from './bus.js';
import { deadLetterSubject, DEFAULT_BUS_SETTINGS, streamFor } from './topology.js';
import { tracedHandle, tracedPublish, type InjectTrace } from './tracing.js';

interface Stored {
  data: Uint8Array;
  storedAtMs: number;
  /** The publisher's trace context (message headers, as on NATS); none without tracing. */
  trace?: Record<string, string>;
}

interface Item extends Stored {
  deliveries: number;
}

interface Subscriber {
  handler: EventHandler;
  opts: ConsumeOptions;
}

interface Durable {
  name: string;
  subject: string;
  subscribers: Subscriber[];
  next: number;
  queue: Item[];
  running: boolean;
}

export interface MemoryEventBusOptions {
  dedupWindowMs?: number;
  /** Base delay of a redelivery (doubles per failed delivery, as with JetStream's nak backoff here). */
  redeliverDelayMs?: number;
  /** Failed deliveries before the dead letter (default: the topology's). */
  maxDeliver?: number;
  now?: () => number;
  /** Where dead letters are logged (one error line each). */
  logger?: Logger;
}

/**
 * The monolithic mode's bus: same contract as JetStream (dedup by msgId, at-least-once per
 * durable, redelivery on failure, dead letter after maxDeliver or for a poison event), kept in
 * this process's memory.
 */
export class MemoryEventBus implements EventBus {
  private readonly seen = new Map<string, number>();
  private readonly log = new Map<string, Stored[]>();
  private readonly durables = new Map<string, Durable>();
  private readonly emitter = new EventEmitter();
  private deadLetterSeq = 0;
  private closed = false;

  constructor(private readonly opts: MemoryEventBusOptions = {}) {
    this.emitter.setMaxListeners(0);
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  publish(subject: string, data: Uint8Array, msgId: string): Promise<void> {
    return tracedPublish(subject, msgId, async (inject) => this.store(subject, data, msgId, inject));
  }

  private store(subject: string, data: Uint8Array, msgId: string, inject: InjectTrace): void {
    if (this.closed) throw new Error('event bus closed');
    const now = this.now();
    const key = `${subject}\u0000${msgId}`;
    const seenAt = this.seen.get(key);
    if (seenAt !== undefined && now - seenAt < this.dedupWindowMs()) return;
    this.seen.set(key, now);
    if (this.seen.size > 100_000) this.expireSeen(now);
    const stored: Stored = { data, storedAtMs: now };
    if (tracingOn()) inject((stored.trace = {}), recordCarrier);
    const events = this.log.get(subject) ?? [];
    events.push(stored);
    // Kept only so that a consumer created later sees earlier events, as with JetStream; bounded.
    if (events.length > 10_000) events.shift();
    this.log.set(subject, events);
    for (const durable of this.durables.values()) {
      if (durable.subject === subject) this.enqueue(durable, { ...stored, deliveries: 0 });
    }
  }

  async consume(subject: string, durableName: string, handler: EventHandler, opts: ConsumeOptions = {}): Promise<() => Promise<void>> {
    const key = `${subject}\u0000${durableName}`;
    let durable = this.durables.get(key);
    if (!durable) {
      durable = { name: durableName, subject, subscribers: [], next: 0, queue: [], running: false };
      this.durables.set(key, durable);
      for (const stored of this.log.get(subject) ?? []) durable.queue.push({ ...stored, deliveries: 0 });
    }
    const sub: Subscriber = { handler, opts };
    durable.subscribers.push(sub);
    opts.onStateChange?.('consuming');
    const d = durable;
    this.drain(d);
    return async () => {
      d.subscribers = d.subscribers.filter((s) => s !== sub);
      opts.onStateChange?.('stopped');
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

  private enqueue(durable: Durable, item: Item): void {
    durable.queue.push(item);
    this.drain(durable);
  }

  private drain(durable: Durable): void {
    if (durable.running || durable.subscribers.length === 0) return;
    durable.running = true;
    queueMicrotask(async () => {
      while (durable.queue.length > 0 && durable.subscribers.length > 0 && !this.closed) {
        const item = durable.queue.shift()!;
        const sub = durable.subscribers[durable.next++ % durable.subscribers.length]!;
        item.deliveries++;
        try {
          const info = { redelivered: item.deliveries > 1, deliveryCount: item.deliveries, storedAtMs: item.storedAtMs };
          await tracedHandle(durable.subject, durable.name, item.trace, recordCarrier, item.deliveries, () => sub.handler(item.data, info));
        } catch (err) {
          await this.failed(durable, sub, item, err);
        }
      }
      durable.running = false;
    });
  }

  private async failed(durable: Durable, sub: Subscriber, item: Item, err: unknown): Promise<void> {
    const reason = deadLetterReason(err, item.deliveries, this.opts.maxDeliver ?? DEFAULT_BUS_SETTINGS.maxDeliver);
    if (!reason) {
      const delay = (this.opts.redeliverDelayMs ?? 500) * 2 ** Math.min(6, item.deliveries - 1);
      setTimeout(() => this.enqueue(durable, item), delay).unref();
      return;
    }
    const stream = streamFor(durable.subject).name;
    const d: DeadLetter = { stream, consumer: durable.name, subject: durable.subject, reason, error: errorText(err), seq: 0, deliveryCount: item.deliveries };
    await this.publish(deadLetterSubject(stream), item.data, `dead-letter-${++this.deadLetterSeq}`);
    this.opts.logger?.error(d, 'event sent to the dead letter');
    sub.opts.onDeadLetter?.(d);
  }

  private dedupWindowMs(): number {
    return this.opts.dedupWindowMs ?? DEFAULT_BUS_SETTINGS.duplicateWindowMs;
  }

  private expireSeen(now: number): void {
    const window = this.dedupWindowMs();
    for (const [k, at] of this.seen) if (now - at >= window) this.seen.delete(k);
  }
}
