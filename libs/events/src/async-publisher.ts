import { createInbox, headers, type NatsConnection, type Subscription } from 'nats';
import { natsHeaderCarrier, tracedPublish, type InjectTrace } from './tracing.js';

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
  expiresAt: number;
}

const decoder = new TextDecoder();

/**
 * JetStream publishing with one reply subscription for every acknowledgement, instead of a
 * request (and a reply subscription, a timer and an error object) per message. Each message
 * carries `Nats-Msg-Id`, so the stream drops a duplicate within its window; the promise resolves
 * when the stream has stored the message and rejects when it did not answer in time.
 */
export class JetStreamAsyncPublisher {
  private readonly inbox: string;
  private readonly pending = new Map<string, Pending>();
  private readonly sub: Subscription;
  private readonly sweeper: NodeJS.Timeout;
  private seq = 0;

  /** `inboxPrefix`: the connection's (its NATS user may subscribe only there). */
  constructor(
    private readonly nc: NatsConnection,
    inboxPrefix: string,
    private readonly timeoutMs = 2_000,
  ) {
    this.inbox = createInbox(inboxPrefix);
    const prefix = this.inbox.length + 1;
    this.sub = nc.subscribe(`${this.inbox}.*`, {
      callback: (_err, msg) => {
        const id = msg.subject.slice(prefix);
        const p = this.pending.get(id);
        if (!p) return;
        this.pending.delete(id);
        if (msg.headers?.code === 503) return p.reject(new Error('no JetStream stream stores this subject'));
        const ack = JSON.parse(decoder.decode(msg.data)) as { error?: { description?: string } };
        if (ack.error) p.reject(new Error(`JetStream refused the message: ${ack.error.description ?? 'unknown error'}`));
        else p.resolve();
      },
    });
    this.sweeper = setInterval(() => this.expire(Date.now()), Math.min(250, timeoutMs));
    this.sweeper.unref();
  }

  /** Publishes in its PRODUCER span, whose trace context rides in the message headers. */
  publish(subject: string, data: Uint8Array, msgId: string): Promise<void> {
    if (this.nc.isClosed()) return Promise.reject(new Error('NATS connection closed'));
    return tracedPublish(subject, msgId, (inject) => this.send(subject, data, msgId, inject));
  }

  private send(subject: string, data: Uint8Array, msgId: string, inject: InjectTrace): Promise<void> {
    const id = String(++this.seq);
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, expiresAt: Date.now() + this.timeoutMs });
      try {
        // Inside the try: a message id NATS refuses as a header (a CR or LF in it) rejects this
        // publish instead of throwing out of it.
        const h = headers();
        h.set('Nats-Msg-Id', msgId);
        inject(h, natsHeaderCarrier);
        this.nc.publish(subject, data, { reply: `${this.inbox}.${id}`, headers: h });
      } catch (err) {
        this.pending.delete(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  close(): void {
    clearInterval(this.sweeper);
    this.sub.unsubscribe();
    for (const p of this.pending.values()) p.reject(new Error('publisher closed'));
    this.pending.clear();
  }

  private expire(now: number): void {
    for (const [id, p] of this.pending) {
      if (p.expiresAt > now) continue;
      this.pending.delete(id);
      p.reject(new Error(`JetStream did not acknowledge within ${this.timeoutMs} ms`));
    }
  }
}
