import {
  AckPolicy,
  connect,
  DeliverPolicy,
  nanos,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
} from 'nats';
import type { Logger } from '@llmgw/logging';
import { JetStreamAsyncPublisher } from './async-publisher.js';
import { Streams, streamFor, type EventBus, type EventHandler } from './bus.js';

export interface NatsBusOptions {
  url: string;
  name: string;
  logger: Logger;
  /** How long JetStream remembers a message id to drop duplicates. */
  duplicateWindowMs?: number;
  /** How long an unacknowledged event waits before it is redelivered. */
  ackWaitMs?: number;
  connectTimeoutMs?: number;
  /** Events of one consumer handled at the same time (default 64). */
  handlerConcurrency?: number;
}

/** Connects and makes sure the streams exist; a server that cannot be reached is a clear error. */
export async function connectNatsBus(opts: NatsBusOptions): Promise<NatsEventBus> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: opts.url,
      name: opts.name,
      timeout: opts.connectTimeoutMs ?? 3_000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
    });
  } catch (err) {
    throw new Error(`cannot reach NATS at ${opts.url}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const jsm = await nc.jetstreamManager();
  for (const stream of Streams) {
    const config = {
      name: stream.name,
      subjects: [...stream.subjects],
      duplicate_window: nanos(opts.duplicateWindowMs ?? 120_000),
    };
    try {
      await jsm.streams.info(stream.name);
      await jsm.streams.update(stream.name, config);
    } catch {
      await jsm.streams.add(config);
    }
  }
  void (async () => {
    for await (const s of nc.status()) opts.logger.info({ natsStatus: s.type }, 'nats connection status');
  })();
  return new NatsEventBus(nc, jsm, nc.jetstream(), opts);
}

export class NatsEventBus implements EventBus {
  private readonly consumers = new Set<ConsumerMessages>();
  private readonly publisher: JetStreamAsyncPublisher;

  constructor(
    readonly connection: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly opts: NatsBusOptions,
  ) {
    this.publisher = new JetStreamAsyncPublisher(connection);
  }

  publish(subject: string, data: Uint8Array, msgId: string): Promise<void> {
    return this.publisher.publish(subject, data, msgId);
  }

  async consume(subject: string, durable: string, handler: EventHandler): Promise<() => Promise<void>> {
    const stream = streamFor(subject);
    try {
      await this.jsm.consumers.info(stream, durable);
    } catch {
      await this.jsm.consumers.add(stream, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: subject,
        ack_wait: nanos(this.opts.ackWaitMs ?? 30_000),
        max_ack_pending: 10_000,
      });
    }
    const consumer = await this.js.consumers.get(stream, durable);
    const messages = await consumer.consume({ max_messages: 512 });
    this.consumers.add(messages);
    const logger = this.opts.logger;
    const limit = this.opts.handlerConcurrency ?? 64;
    const handle = async (m: JsMsg) => {
      try {
        await handler(m.data, { redelivered: m.redelivered });
        m.ack();
      } catch (err) {
        logger.warn({ err, subject, durable, seq: m.seq }, 'event handler failed; will be redelivered');
        m.nak(1_000);
      }
    };
    // Events are independent (handlers are idempotent by event id), so several are handled at
    // once: their Redis commands then share round trips instead of waiting for each other.
    void (async () => {
      const inFlight = new Set<Promise<void>>();
      for await (const m of messages) {
        const p: Promise<void> = handle(m).finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= limit) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    })();
    return async () => {
      this.consumers.delete(messages);
      await messages.close();
    };
  }

  broadcast(subject: string, data: Uint8Array): void {
    this.connection.publish(subject, data);
  }

  onBroadcast(subject: string, handler: (data: Uint8Array) => void): () => void {
    const sub = this.connection.subscribe(subject, { callback: (_err, msg) => handler(msg.data) });
    return () => sub.unsubscribe();
  }

  async close(): Promise<void> {
    for (const c of this.consumers) await c.close();
    this.consumers.clear();
    this.publisher.close();
    await this.connection.drain();
  }
}
