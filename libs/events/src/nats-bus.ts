import { EventEmitter, once } from 'node:events';
import {
  AckPolicy,
  connect,
  DeliverPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  headers,
  nanos,
  type ConnectionOptions,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
} from 'nats';
import type { Logger } from '@llmgw/logging';
import { JetStreamAsyncPublisher } from './async-publisher.js';
import { natsHeaderCarrier, tracedHandle } from './tracing.js';
import {
  DeadLetterHeaders,
  deadLetterReason,
  errorText,
  type ConsumeOptions,
  type ConsumerState,
  type DeadLetter,
  type DeadLetterReason,
  type EventBus,
  type EventHandler,
} from './bus.js';
import { inboxPrefix } from './permissions.js';
import {
  busSettingsFromEnv,
  consumerSpec,
  deadLetterSubject,
  nakDelayMs,
  natsCredentialsFromEnv,
  streamFor,
  streamSpecs,
  type BusSettings,
  type ConsumerSpec,
  type NatsCredentials,
  type StreamSpec,
} from './topology.js';

export interface NatsBusOptions {
  /** Server(s), comma-separated; a URL may carry `user:password@` (the form the nats CLI takes). */
  url: string;
  /** The connection's name; replies come to inboxPrefix(name), so a service's connection is named after it. */
  name: string;
  logger: Logger;
  /** Default: NATS_USER and NATS_PASSWORD from the environment, else those in the URL. */
  credentials?: NatsCredentials;
  /**
   * Streams this connection creates or updates at start and on every reconnect (default: all of
   * the topology). A service reconciles only the streams its NATS user may manage (streamsUsedBy).
   */
  streams?: readonly string[];
  /** Overrides of the topology settings, which otherwise come from the environment (busEnvSchema). */
  settings?: Partial<BusSettings>;
  /** Per connection attempt; also how long connectNatsBus waits for the server before returning a degraded bus. */
  connectTimeoutMs?: number;
  /** Events of one consumer handled at the same time (default 64). */
  handlerConcurrency?: number;
}

/** The longest pause between two attempts to connect, reconcile or re-create a consumer. */
const MAX_RETRY_MS = 5_000;
const retryDelayMs = (attempt: number) => Math.min(MAX_RETRY_MS, 250 * 2 ** Math.min(attempt, 10));

/**
 * How long one pull request lives. nats.js derives the rest from it: the server's idle heartbeat
 * (half of it; two missed ones re-issue the pull) and the wait between checks of a consumer it
 * cannot reach. Its default of 30 s left a consumer idle for 30–60 s after its JetStream
 * cluster elected a new consumer leader (the pull was lost with the old one); 5 s resumes it
 * within seconds of the election, for one pull request every 5 s of an idle consumer.
 */
const PULL_EXPIRES_MS = 5_000;

/**
 * nats.js takes credentials as options only: `nats://user:password@host` becomes the URL
 * without them and `user`/`pass`; explicit credentials win over those in a URL.
 */
export function natsConnectOptions(url: string, credentials?: NatsCredentials): Pick<ConnectionOptions, 'servers' | 'user' | 'pass'> {
  let fromUrl: NatsCredentials | undefined;
  const servers = url.split(',').map((server) => {
    const m = /^([a-z]+:\/\/)([^@/]*)@(.*)$/i.exec(server.trim());
    if (!m) return server.trim();
    const userinfo = m[2]!;
    const colon = userinfo.indexOf(':');
    fromUrl ??= colon < 0 ? { user: decodeURIComponent(userinfo), pass: '' } : { user: decodeURIComponent(userinfo.slice(0, colon)), pass: decodeURIComponent(userinfo.slice(colon + 1)) };
    return `${m[1]}${m[3]}`;
  });
  const c = credentials ?? fromUrl;
  return c ? { servers, user: c.user, pass: c.pass } : { servers };
}

/**
 * Returns a bus at once, even when NATS is unreachable: it connects (and reconciles the
 * topology) in the background, retrying for ever. While it has no connection, publishes reject
 * at once and consumers report `stalled`; they start when the server appears. Waits up to
 * connectTimeoutMs for the first connection so that a healthy start is connected on return.
 * A bad setting in the environment throws (a ConfigError naming the variable).
 */
export async function connectNatsBus(opts: NatsBusOptions): Promise<NatsEventBus> {
  const settings = { ...busSettingsFromEnv(process.env), ...opts.settings };
  const bus = new NatsEventBus({ ...opts, credentials: opts.credentials ?? natsCredentialsFromEnv(process.env) }, settings);
  const timeoutMs = opts.connectTimeoutMs ?? 3_000;
  let timer: NodeJS.Timeout | undefined;
  const connected = await Promise.race([
    bus.ready().then(() => true),
    new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (!connected) opts.logger.warn({ servers: bus.servers }, 'NATS not reachable yet: starting degraded, connecting in the background');
  return bus;
}

interface Link {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  publisher: JetStreamAsyncPublisher;
}

export class NatsEventBus implements EventBus {
  private link: Link | undefined;
  /** True while the connection is up (false between a disconnect and the reconnect). */
  private up = false;
  private closed = false;
  private readonly events = new EventEmitter();
  private readonly loops = new Set<ConsumerLoop>();
  private readonly broadcasts = new Set<{ subject: string; handler: (data: Uint8Array) => void; unsubscribe?: () => void }>();
  private readonly connecting: Promise<void>;
  private wake: (() => void) | undefined;
  private readonly connectOptions: Pick<ConnectionOptions, 'servers' | 'user' | 'pass'>;

  constructor(
    private readonly opts: NatsBusOptions,
    readonly settings: BusSettings,
  ) {
    this.events.setMaxListeners(0);
    this.connectOptions = natsConnectOptions(opts.url, opts.credentials);
    this.connecting = this.connectLoop();
  }

  /** The servers without credentials, for log lines. */
  get servers(): string[] {
    return [this.connectOptions.servers ?? []].flat();
  }

  /** The connection, once there is one. */
  get connection(): NatsConnection | undefined {
    return this.link?.nc;
  }

  /** Resolves when connected and the topology is reconciled; rejects when the bus is closed first. */
  async ready(): Promise<Link> {
    while (!this.closed) {
      if (this.link && this.up) return this.link;
      await once(this.events, 'change');
    }
    throw new Error('event bus closed');
  }

  publish(subject: string, data: Uint8Array, msgId: string): Promise<void> {
    // Fail fast: the executor's outbox keeps the event; buffering it in the client would only delay that.
    if (!this.link || !this.up) return Promise.reject(new Error('NATS not connected'));
    return this.link.publisher.publish(subject, data, msgId);
  }

  async consume(subject: string, durable: string, handler: EventHandler, opts: ConsumeOptions = {}): Promise<() => Promise<void>> {
    const loop = new ConsumerLoop(this, consumerSpec(subject, durable, this.settings), handler, opts, this.opts);
    this.loops.add(loop);
    await loop.started;
    return async () => {
      this.loops.delete(loop);
      await loop.stop();
    };
  }

  broadcast(subject: string, data: Uint8Array): void {
    if (this.link && this.up) this.link.nc.publish(subject, data);
  }

  onBroadcast(subject: string, handler: (data: Uint8Array) => void): () => void {
    const entry: { subject: string; handler: (data: Uint8Array) => void; unsubscribe?: () => void } = { subject, handler };
    this.broadcasts.add(entry);
    if (this.link) this.subscribe(this.link.nc, entry);
    return () => {
      this.broadcasts.delete(entry);
      entry.unsubscribe?.();
    };
  }

  /**
   * Reads every stored event of `subject`, oldest first, through an ephemeral consumer,
   * up to the last one stored when the read began. `complete` is false when the stream has
   * already dropped its oldest events (max_age, max_bytes): then `firstStoredAtMs` is the horizon.
   */
  async readAll(
    subject: string,
    onEvent: (data: Uint8Array, info: { seq: number; storedAtMs: number }) => void,
  ): Promise<{ events: number; complete: boolean; firstStoredAtMs?: number }> {
    const { js, jsm } = await this.ready();
    const stream = streamFor(subject, this.settings).name;
    const info = await jsm.streams.info(stream, { subjects_filter: subject });
    const complete = info.state.first_seq <= 1;
    const firstStoredAtMs = info.state.messages > 0 ? Date.parse(info.state.first_ts) : undefined;
    const stored = info.state.subjects?.[subject] ?? 0;
    if (stored === 0) return { events: 0, complete, firstStoredAtMs };
    const lastSeq = info.state.last_seq;
    // An ephemeral pull consumer without acks (nats.js's ordered consumer needs a 2.10 server for a filter); the server drops it when idle.
    const { name } = await jsm.consumers.add(stream, {
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
      filter_subject: subject,
      inactive_threshold: nanos(60_000),
    });
    const messages = await (await js.consumers.get(stream, name)).consume({ max_messages: 1_024 });
    let events = 0;
    try {
      for await (const m of messages) {
        onEvent(m.data, { seq: m.seq, storedAtMs: Math.floor(m.info.timestampNanos / 1e6) });
        events++;
        if (m.seq >= lastSeq || m.info.pending === 0) break;
      }
    } finally {
      messages.stop();
      await jsm.consumers.delete(stream, name).catch(() => undefined);
    }
    return { events, complete, firstStoredAtMs };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    this.events.emit('change');
    await Promise.all([...this.loops].map((l) => l.stop()));
    this.loops.clear();
    await this.connecting;
    if (this.link) {
      this.link.publisher.close();
      await this.link.nc.drain().catch(() => undefined);
    }
  }

  /** Sleeps, returning early when the bus closes. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private async connectLoop(): Promise<void> {
    const { logger } = this.opts;
    const servers = this.servers;
    for (let attempt = 0; !this.closed; attempt++) {
      let nc: NatsConnection;
      try {
        // Once connected, nats.js reconnects for ever on its own; only the first connection is ours to retry.
        nc = await connect({
          ...this.connectOptions,
          name: this.opts.name,
          inboxPrefix: inboxPrefix(this.opts.name),
          timeout: this.opts.connectTimeoutMs ?? 3_000,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
        });
      } catch (err) {
        if (attempt === 0) logger.warn({ servers, err: errorText(err) }, 'cannot reach NATS; retrying in the background');
        await this.pause(retryDelayMs(attempt));
        continue;
      }
      if (this.closed) {
        await nc.close();
        return;
      }
      logger.info({ servers, user: this.connectOptions.user }, 'connected to NATS');
      const jsm = await nc.jetstreamManager({ checkAPI: false });
      this.link = { nc, jsm, js: nc.jetstream(), publisher: new JetStreamAsyncPublisher(nc, inboxPrefix(this.opts.name)) };
      for (const b of this.broadcasts) this.subscribe(nc, b);
      void this.watchStatus(nc);
      // Reconcile before reporting up, so that the first publish finds its stream.
      await this.reconcile();
      return;
    }
  }

  /** Brings the streams it manages (opts.streams) in line with the topology, retrying until JetStream answers. */
  private async reconcile(): Promise<void> {
    const managed = this.opts.streams;
    const specs = streamSpecs(this.settings).filter((s) => managed === undefined || managed.includes(s.name));
    for (let attempt = 0; !this.closed && this.link; attempt++) {
      try {
        for (const spec of specs) await reconcileStream(this.link.jsm, spec, this.opts.logger);
        this.setUp(!this.link.nc.isClosed());
        return;
      } catch (err) {
        if (attempt === 0) this.opts.logger.warn({ err: errorText(err) }, 'cannot reconcile JetStream streams yet; retrying');
        await this.pause(retryDelayMs(attempt));
      }
    }
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      this.opts.logger.info({ natsStatus: s.type }, 'nats connection status');
      if (s.type === 'disconnect') this.setUp(false);
      // A server that came back may have lost its streams (a new data dir): reconcile again.
      else if (s.type === 'reconnect') void this.reconcile();
    }
    this.setUp(false);
  }

  private setUp(up: boolean): void {
    if (this.up === up) return;
    this.up = up;
    this.events.emit('change');
  }

  /** Whether the connection is up, and a way to hear when that changes. */
  get isUp(): boolean {
    return this.up && !this.closed;
  }

  onChange(listener: () => void): () => void {
    this.events.on('change', listener);
    return () => this.events.off('change', listener);
  }

  private subscribe(nc: NatsConnection, entry: { subject: string; handler: (data: Uint8Array) => void; unsubscribe?: () => void }): void {
    const sub = nc.subscribe(entry.subject, { callback: (_err, msg) => entry.handler(msg.data) });
    entry.unsubscribe = () => sub.unsubscribe();
  }
}

/** Creates the stream or updates what differs; a setting the server refuses to change is one clear error line. */
async function reconcileStream(jsm: JetStreamManager, spec: StreamSpec, logger: Logger): Promise<void> {
  const want = {
    subjects: spec.subjects,
    max_age: nanos(spec.maxAgeMs),
    max_bytes: spec.maxBytes,
    duplicate_window: nanos(spec.duplicateWindowMs),
    num_replicas: spec.replicas,
    discard: DiscardPolicy.Old,
  };
  let current;
  try {
    current = (await jsm.streams.info(spec.name)).config;
  } catch (err) {
    if (!/stream not found/i.test(errorText(err))) throw err;
    await jsm.streams.add({ name: spec.name, ...want });
    logger.info({ stream: spec.name }, 'JetStream stream created');
    return;
  }
  // Replay needs every event kept until max_age (limits retention) on disk; neither can be changed in place.
  reportImmutable({ retention: RetentionPolicy.Limits, storage: StorageType.File }, current, { stream: spec.name }, logger);
  const changed = differing(want, current as unknown as Record<string, unknown>);
  if (changed.length === 0) return;
  try {
    await jsm.streams.update(spec.name, { ...current, ...want });
    logger.info({ stream: spec.name, changed }, 'JetStream stream updated');
  } catch (err) {
    logger.error({ stream: spec.name, changed, err: errorText(err) }, 'JetStream refused to update the stream; running with its current settings');
  }
}

/** Creates the durable consumer or updates what differs (ack_wait, max_deliver, max_ack_pending are mutable). */
async function reconcileConsumer(jsm: JetStreamManager, spec: ConsumerSpec, logger: Logger): Promise<void> {
  const want = {
    ack_wait: nanos(spec.ackWaitMs),
    max_deliver: spec.serverMaxDeliver,
    max_ack_pending: spec.maxAckPending,
    filter_subject: spec.filterSubject,
  };
  let current;
  try {
    current = (await jsm.consumers.info(spec.stream, spec.durable)).config;
  } catch (err) {
    if (!/consumer not found/i.test(errorText(err))) throw err;
    await jsm.consumers.add(spec.stream, { durable_name: spec.durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ...want });
    logger.info({ stream: spec.stream, consumer: spec.durable }, 'JetStream consumer created');
    return;
  }
  reportImmutable({ ack_policy: AckPolicy.Explicit }, current, { stream: spec.stream, consumer: spec.durable }, logger);
  const changed = differing(want, current as unknown as Record<string, unknown>);
  if (changed.length === 0) return;
  try {
    await jsm.consumers.update(spec.stream, spec.durable, want);
    logger.info({ stream: spec.stream, consumer: spec.durable, changed }, 'JetStream consumer updated');
  } catch (err) {
    logger.error({ stream: spec.stream, consumer: spec.durable, changed, err: errorText(err) }, 'JetStream refused to update the consumer; running with its current settings');
  }
}

/** One error line for settings JetStream cannot change on an existing stream or consumer. */
function reportImmutable(want: Record<string, unknown>, current: object, where: object, logger: Logger): void {
  const fields = differing(want, current as Record<string, unknown>);
  if (fields.length === 0) return;
  const have = Object.fromEntries(fields.map((f) => [f, (current as Record<string, unknown>)[f]]));
  logger.error({ ...where, want: Object.fromEntries(fields.map((f) => [f, want[f]])), have }, 'JetStream setting cannot be changed in place: delete and re-create to apply it');
}

function differing(want: Record<string, unknown>, current: Record<string, unknown>): string[] {
  return Object.keys(want).filter((k) => JSON.stringify(want[k]) !== JSON.stringify(current[k]));
}

/**
 * One consume() call: (re)creates its durable consumer and pulls from it until stopped. Whatever
 * ends or breaks the pull (consumer or stream deleted, server restarted, JetStream unavailable)
 * is logged and retried with backoff; the state goes to `stalled` meanwhile.
 */
class ConsumerLoop {
  readonly started: Promise<void>;
  private markStarted!: () => void;
  private state: ConsumerState | undefined;
  private messages: ConsumerMessages | undefined;
  private stopped = false;
  private readonly done: Promise<void>;
  private readonly log: Logger;
  private readonly offChange: () => void;
  private wake: (() => void) | undefined;

  constructor(
    private readonly bus: NatsEventBus,
    private readonly spec: ConsumerSpec,
    private readonly handler: EventHandler,
    private readonly opts: ConsumeOptions,
    private readonly busOpts: NatsBusOptions,
  ) {
    this.log = busOpts.logger.child({ stream: spec.stream, consumer: spec.durable });
    this.started = new Promise((r) => (this.markStarted = r));
    // Health follows the connection at once; the pull itself notices a missing consumer after a reconnect.
    this.offChange = bus.onChange(() => this.setState(bus.isUp && this.messages ? 'consuming' : 'stalled'));
    this.done = this.run();
  }

  async stop(): Promise<void> {
    if (this.stopped) return this.done;
    this.stopped = true;
    this.offChange();
    this.wake?.();
    await this.messages?.close().catch(() => undefined);
    await this.done;
    this.setState('stopped');
  }

  private setState(state: ConsumerState): void {
    if (this.state === state || this.state === 'stopped') return;
    this.state = state;
    this.opts.onStateChange?.(state);
  }

  private async run(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      if (!this.bus.isUp) {
        this.setState('stalled');
        this.markStarted();
        await new Promise<void>((r) => {
          const off = this.bus.onChange(() => {
            if (this.bus.isUp) done();
          });
          const done = () => {
            off();
            this.wake = undefined;
            r();
          };
          this.wake = done;
        });
        continue;
      }
      try {
        const { js, jsm } = await this.bus.ready();
        await reconcileStream(jsm, streamFor(this.spec.filterSubject, this.bus.settings), this.log);
        await reconcileConsumer(jsm, this.spec, this.log);
        const consumer = await js.consumers.get(this.spec.stream, this.spec.durable);
        // abort_on_missing_resource: a deleted consumer or stream ends the pull, so this loop re-creates it.
        const messages = await consumer.consume({ max_messages: 512, expires: PULL_EXPIRES_MS, abort_on_missing_resource: true });
        if (this.stopped) {
          await messages.close();
          break;
        }
        this.messages = messages;
        this.setState('consuming');
        this.markStarted();
        attempt = 0;
        await this.pull(messages, js);
        if (!this.stopped) this.log.warn('event pull ended; re-creating the consumer');
      } catch (err) {
        if (this.stopped) break;
        this.log.warn({ err: errorText(err), attempt }, 'cannot consume; retrying');
      } finally {
        this.messages = undefined;
      }
      if (this.stopped) break;
      this.setState('stalled');
      this.markStarted();
      await new Promise<void>((r) => {
        const t = setTimeout(r, retryDelayMs(attempt));
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    this.markStarted();
  }

  /** Handles events (several at once: handlers are idempotent by event id, and their Redis round trips overlap). */
  private async pull(messages: ConsumerMessages, js: JetStreamClient): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    const limit = this.busOpts.handlerConcurrency ?? 64;
    try {
      for await (const m of messages) {
        const p: Promise<void> = this.handle(m, js)
          .catch((err) => this.log.error({ err: errorText(err), seq: m.seq }, 'event handling failed unexpectedly'))
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= limit) await Promise.race(inFlight);
      }
    } finally {
      // Let running handlers ack, but not for longer than ack_wait: by then a hung one's event is redelivered anyway.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(inFlight), new Promise((r) => (timer = setTimeout(r, this.spec.ackWaitMs)))]);
      clearTimeout(timer);
    }
  }

  private async handle(m: JsMsg, js: JetStreamClient): Promise<void> {
    const deliveryCount = m.info.redeliveryCount;
    if (deliveryCount > this.spec.maxDeliver) {
      return this.deadLetter(m, js, 'max_deliver', 'its last delivery never finished (handler hung or the process died)');
    }
    try {
      const info = { redelivered: m.redelivered, deliveryCount, storedAtMs: Math.floor(m.info.timestampNanos / 1e6) };
      await tracedHandle(m.subject, this.spec.durable, m.headers, natsHeaderCarrier, deliveryCount, () => this.handler(m.data, info));
      m.ack();
    } catch (err) {
      const reason = deadLetterReason(err, deliveryCount, this.spec.maxDeliver);
      if (reason) return this.deadLetter(m, js, reason, errorText(err));
      this.log.warn({ err: errorText(err), seq: m.seq, deliveryCount }, 'event handler failed; will be redelivered');
      m.nak(nakDelayMs(deliveryCount));
    }
  }

  /** Stores the raw event in the dead-letter stream, then terminates it; if that store fails, it is redelivered instead. */
  private async deadLetter(m: JsMsg, js: JetStreamClient, reason: DeadLetterReason, error: string): Promise<void> {
    const d: DeadLetter = { stream: this.spec.stream, consumer: this.spec.durable, subject: m.subject, reason, error, seq: m.seq, deliveryCount: m.info.redeliveryCount };
    const h = headers();
    h.set(DeadLetterHeaders.reason, reason);
    h.set(DeadLetterHeaders.error, error);
    h.set(DeadLetterHeaders.subject, m.subject);
    h.set(DeadLetterHeaders.stream, d.stream);
    h.set(DeadLetterHeaders.seq, String(d.seq));
    h.set(DeadLetterHeaders.consumer, d.consumer);
    h.set(DeadLetterHeaders.deliveries, String(d.deliveryCount));
    try {
      // The msgID makes a repeated dead-lettering of the same event (term lost) store it once.
      await js.publish(deadLetterSubject(d.stream), m.data, { headers: h, msgID: `${d.stream}-${d.consumer}-${d.seq}` });
    } catch (err) {
      this.log.error({ ...d, err: errorText(err) }, 'cannot store the dead letter; the event will be redelivered');
      m.nak(nakDelayMs(d.deliveryCount));
      return;
    }
    m.term();
    this.log.error(d, 'event sent to the dead letter');
    this.opts.onDeadLetter?.(d);
  }
}
