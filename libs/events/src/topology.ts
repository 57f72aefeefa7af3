import { envInt, envMs, envString, parseEnv } from '@llmgw/config';
import { z } from 'zod';
import { Subjects } from './bus.js';

/*
 * The JetStream topology, declared once: every stream and consumer setting the gateway relies
 * on, with its default and why. connectNatsBus reconciles the server with it at start (and again
 * whenever a consumer has to be re-created); MemoryEventBus honours the same delivery limits.
 */

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;
const GIB = 1024 ** 3;

/** The knobs an operator may turn, all from the environment (busEnvSchema). */
export interface BusSettings {
  /** Copies of every stream: 1 on one server, 3 in a production cluster (survives one node). */
  replicas: number;
  /** How long USAGE keeps events: the replay horizon of `npm run usage:replay`. */
  usageMaxAgeMs: number;
  /** Disk cap of USAGE; when full, the oldest events go first (discard old). */
  usageMaxBytes: number;
  /** How long a stream remembers a Nats-Msg-Id to drop a retried publish. */
  duplicateWindowMs: number;
  /** How long a delivered, unacknowledged event waits before it is delivered again. */
  ackWaitMs: number;
  /** Failed deliveries of one event before it goes to the dead letter. */
  maxDeliver: number;
}

export const DEFAULT_BUS_SETTINGS: BusSettings = {
  replicas: 1,
  // A week: a bad deploy found on Monday can still be replayed from Friday's events.
  usageMaxAgeMs: 7 * DAY_MS,
  // A cap so the stream cannot fill the disk. Each event is ~250 B on disk (payload, headers,
  // index), so 8 GiB holds ~34 M events: 7 days at ~55 rps, ~19 h at 500 rps. Size it to
  // rps × 250 B × max_age for a full week of replay.
  usageMaxBytes: 8 * GIB,
  // Longer than the executor's first publish and its quick retries; anything later is still
  // deduplicated by the accountant (dedupeHorizonMs covers this window).
  duplicateWindowMs: 10 * MINUTE_MS,
  // Well above a handler's Redis round trips; a crashed consumer's events come back after it.
  ackWaitMs: 30_000,
  // With the nak backoff below (1 s doubling to 60 s) 20 deliveries span ~15 min: a store
  // outage shorter than that dead-letters nothing.
  maxDeliver: 20,
};

/**
 * The variables behind BusSettings and the NATS user; the duplicate window is fixed (it must
 * cover the executor's retries, not a site's taste).
 */
export const busEnvSchema = z
  .object({
    NATS_STREAM_REPLICAS: envInt({ min: 1, max: 5, default: DEFAULT_BUS_SETTINGS.replicas }),
    USAGE_STREAM_MAX_AGE_MS: envInt({ min: DAY_MS, default: DEFAULT_BUS_SETTINGS.usageMaxAgeMs }),
    USAGE_STREAM_MAX_BYTES: envInt({ min: 64 * 1024 * 1024, default: DEFAULT_BUS_SETTINGS.usageMaxBytes }),
    USAGE_ACK_WAIT_MS: envInt({ min: 1_000, default: DEFAULT_BUS_SETTINGS.ackWaitMs }),
    USAGE_MAX_DELIVER: envInt({ min: 1, max: 1_000, default: DEFAULT_BUS_SETTINGS.maxDeliver }),
    /** The service's NATS user (permissions.ts); unset: no credentials, or those in NATS_URL. */
    NATS_USER: envString().optional(),
    NATS_PASSWORD: envString().optional(),
  })
  .superRefine((v, ctx) => {
    // Never the value in the message: it would be a password.
    if ((v.NATS_USER === undefined) !== (v.NATS_PASSWORD === undefined)) {
      const [missing, set] = v.NATS_USER === undefined ? ['NATS_USER', 'NATS_PASSWORD'] : ['NATS_PASSWORD', 'NATS_USER'];
      ctx.addIssue({ code: 'custom', path: [missing], message: `is not set (${set} is)` });
    }
  });

export function busSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): BusSettings {
  const v = parseEnv(busEnvSchema, env);
  return {
    replicas: v.NATS_STREAM_REPLICAS,
    usageMaxAgeMs: v.USAGE_STREAM_MAX_AGE_MS,
    usageMaxBytes: v.USAGE_STREAM_MAX_BYTES,
    duplicateWindowMs: DEFAULT_BUS_SETTINGS.duplicateWindowMs,
    ackWaitMs: v.USAGE_ACK_WAIT_MS,
    maxDeliver: v.USAGE_MAX_DELIVER,
  };
}

export interface NatsCredentials {
  user: string;
  pass: string;
}

/** NATS_USER and NATS_PASSWORD, or undefined when neither is set (one without the other is a ConfigError). */
export function natsCredentialsFromEnv(env: NodeJS.ProcessEnv = process.env): NatsCredentials | undefined {
  const v = parseEnv(busEnvSchema, env);
  return v.NATS_USER !== undefined && v.NATS_PASSWORD !== undefined ? { user: v.NATS_USER, pass: v.NATS_PASSWORD } : undefined;
}

export interface StreamSpec {
  name: string;
  subjects: string[];
  maxAgeMs: number;
  maxBytes: number;
  duplicateWindowMs: number;
  replicas: number;
  /** `old`: a full stream drops its oldest events and keeps accepting new ones (usage must never be refused). */
  discard: 'old';
}

export interface ConsumerSpec {
  stream: string;
  durable: string;
  filterSubject: string;
  ackWaitMs: number;
  /**
   * Deliveries the server makes: maxDeliver + 1. The spare one exists for an event whose last
   * attempt never finished (its handler hung or crashed the process): on that delivery the bus
   * dead-letters it without running the handler, so even a process-killing event ends in the
   * dead letter instead of sitting unacknowledged forever.
   */
  serverMaxDeliver: number;
  /** Failed deliveries before the dead letter (checked by the bus against the delivery count). */
  maxDeliver: number;
  /** Unacknowledged events in flight per consumer: enough for 64 handlers × 512 buffered, bounded so a stuck consumer stops pulling. */
  maxAckPending: number;
}

/** Subject of the dead letters of a stream: `llmgateway.deadletter.v1.<stream in lower case>`. */
export function deadLetterSubject(stream: string): string {
  return `llmgateway.deadletter.v1.${stream.toLowerCase()}`;
}

export const DEAD_LETTER_STREAM = 'DEADLETTER';

/** Every stream, from the settings. */
export function streamSpecs(s: BusSettings): StreamSpec[] {
  const common = { duplicateWindowMs: s.duplicateWindowMs, replicas: s.replicas, discard: 'old' as const };
  return [
    { name: 'USAGE', subjects: ['llmgateway.usage.v1.>'], maxAgeMs: s.usageMaxAgeMs, maxBytes: s.usageMaxBytes, ...common },
    // Budget alerts are notifications, stale after a day; a small cap is plenty.
    { name: 'ALERTS', subjects: ['llmgateway.alerts.v1.>'], maxAgeMs: DAY_MS, maxBytes: 256 * 1024 ** 2, ...common },
    // Kept a month for a human to look at, and small: a flood of dead letters is an incident, not data.
    { name: DEAD_LETTER_STREAM, subjects: ['llmgateway.deadletter.v1.>'], maxAgeMs: 30 * DAY_MS, maxBytes: GIB, ...common },
  ];
}

/** The stream holding `subject` (a `>` pattern matches every subject under its prefix). */
export function streamFor(subject: string, s: BusSettings = DEFAULT_BUS_SETTINGS): StreamSpec {
  const stream = streamSpecs(s).find((st) => st.subjects.some((p) => subject.startsWith(p.slice(0, -1))));
  if (!stream) throw new Error(`no stream holds subject ${subject}`);
  return stream;
}

/** The durable consumers of the gateway: their names are part of each consumer's NATS permissions (permissions.ts). */
export const Consumers = {
  /** Quota replaces each reservation by the actual usage. */
  quotaReconciler: { subject: Subjects.usageRecorded, durable: 'quota-reconciler' },
  /** The accountant aggregates usage. */
  usageAccountant: { subject: Subjects.usageRecorded, durable: 'usage-accountant' },
  /** The accountant delivers alerts to the configured webhooks: one consumer per alert subject. */
  budgetAlertNotifier: { subject: Subjects.budgetAlert, durable: 'budget-alert-notifier' },
  tokenGrowthAlertNotifier: { subject: Subjects.tokenGrowthAlert, durable: 'token-growth-alert-notifier' },
} as const;

/** Every durable consumer gets the same delivery limits: both of USAGE's (accountant, quota reconciler) need the same guarantees. */
export function consumerSpec(subject: string, durable: string, s: BusSettings): ConsumerSpec {
  return {
    stream: streamFor(subject, s).name,
    durable,
    filterSubject: subject,
    ackWaitMs: s.ackWaitMs,
    maxDeliver: s.maxDeliver,
    serverMaxDeliver: s.maxDeliver + 1,
    maxAckPending: 10_000,
  };
}

const MAX_NAK_DELAY_MS = 60_000;

/** Delay before a failed event is delivered again: 1 s doubling per delivery, at most 60 s. */
export function nakDelayMs(deliveryCount: number): number {
  return Math.min(MAX_NAK_DELAY_MS, 1_000 * 2 ** Math.min(16, Math.max(0, deliveryCount - 1)));
}

/**
 * How long after its first delivery one stored event can still be delivered again, plus how
 * long a retried publish of it is dropped by the stream: every delivery takes at most ack_wait
 * (then it is redelivered) plus the nak delay, for serverMaxDeliver deliveries. A consumer that
 * remembers counted event ids this long (plus a margin for clock skew and queueing) never
 * counts a redelivery twice. Defaults: max(10 min, 21 × (30 s + 60 s) = 31.5 min) + 10 min
 * ≈ 42 min, so at 500 events/s about 1.3 M dedupe keys live at once (rps × horizon), instead of
 * 300 M with a 7-day TTL.
 */
export function dedupeHorizonMs(s: BusSettings): number {
  const redelivery = (s.maxDeliver + 1) * (s.ackWaitMs + MAX_NAK_DELAY_MS);
  return Math.max(s.duplicateWindowMs, redelivery) + 10 * MINUTE_MS;
}
