import type { ServiceName } from '@llmgw/runtime';
import { Subjects } from './bus.js';
import { Consumers, deadLetterSubject, streamFor } from './topology.js';

/*
 * What each service does on the bus, declared once; its NATS user's permissions, the streams it
 * reconciles and the nats-server `authorization` block are all derived from this. A service may
 * do nothing else: the server refuses any other publish or subscription (allow lists).
 */

export interface BusRole {
  /** Subjects it stores events on (JetStream publish, acknowledged by the stream). */
  stores: readonly string[];
  /** Durable consumers it pulls from; each may also dead-letter what it cannot count. */
  consumes: readonly { subject: string; durable: string }[];
  /** Core NATS subjects it broadcasts on (best effort, not stored). */
  broadcasts: readonly string[];
  /** Core NATS subjects it listens to. */
  listens: readonly string[];
}

const none: BusRole = { stores: [], consumes: [], broadcasts: [], listens: [] };

export const BUS_ROLES: Record<ServiceName, BusRole> = {
  edge: { ...none, listens: [Subjects.keyRevoked] },
  // Auth replicas also hear each other's revocations (their caches of bootstrap keys).
  auth: { ...none, broadcasts: [Subjects.keyRevoked], listens: [Subjects.keyRevoked] },
  quota: { ...none, stores: [Subjects.budgetAlert], consumes: [Consumers.quotaReconciler], listens: [Subjects.keyRevoked] },
  router: { ...none, listens: [Subjects.backendHealth, Subjects.backendStats] },
  'provider-executor': { ...none, stores: [Subjects.usageRecorded], broadcasts: [Subjects.backendHealth, Subjects.backendStats] },
  'usage-accountant': {
    ...none,
    stores: [Subjects.tokenGrowthAlert],
    consumes: [Consumers.usageAccountant, Consumers.budgetAlertNotifier, Consumers.tokenGrowthAlertNotifier],
    listens: [Subjects.keyRevoked],
  },
};

/**
 * Where replies to a connection named `name` arrive (JetStream API answers, publish acks, pulled
 * events): a prefix of its own, so that no service can subscribe to another's replies.
 */
export function inboxPrefix(name: string): string {
  return `_INBOX.${name}`;
}

/** Subjects of the stored events a role publishes: its own, and the dead letters of the streams it consumes. */
function storedSubjects(role: BusRole): string[] {
  return unique([...role.stores, ...role.consumes.map((c) => deadLetterSubject(streamFor(c.subject).name))]);
}

/** The streams a service creates or updates at start: those it stores on or consumes from. */
export function streamsUsedBy(service: ServiceName): string[] {
  const role = BUS_ROLES[service];
  return unique([...storedSubjects(role), ...role.consumes.map((c) => c.subject)].map((s) => streamFor(s).name));
}

export interface NatsPermissions {
  publish: string[];
  subscribe: string[];
}

/** The subjects a service's NATS user may publish and subscribe to, with the JetStream API calls nats.js makes for its role. */
export function natsPermissions(service: ServiceName): NatsPermissions {
  const role = BUS_ROLES[service];
  const reconcile = streamsUsedBy(service).flatMap((s) => ['INFO', 'CREATE', 'UPDATE'].map((op) => `$JS.API.STREAM.${op}.${s}`));
  const consume = role.consumes.flatMap(({ subject, durable }) => {
    const stream = streamFor(subject).name;
    return [
      // Create and update alike (nats.js ≥ 2.9 API: the filter subject is part of the name).
      `$JS.API.CONSUMER.CREATE.${stream}.${durable}.${subject}`,
      `$JS.API.CONSUMER.INFO.${stream}.${durable}`,
      `$JS.API.CONSUMER.MSG.NEXT.${stream}.${durable}`,
      // Ack, nak and term of its own consumer's deliveries only.
      `$JS.ACK.${stream}.${durable}.>`,
    ];
  });
  return {
    publish: [...storedSubjects(role), ...role.broadcasts, ...reconcile, ...consume],
    subscribe: [...role.listens, `${inboxPrefix(service)}.>`],
  };
}

/** The user with every right, for operators and tests (`npm run usage:replay`, inspecting streams). */
export const NATS_ADMIN_USER = 'admin';

/**
 * The nats-server `authorization { users = [...] }` block: one user per service with its
 * permissions, and the admin. A password may be a bcrypt hash (`nats server passwd`), which
 * nats-server recognises, so the file need not hold the secrets themselves.
 */
export function natsAuthorizationConfig(passwords: Record<ServiceName | typeof NATS_ADMIN_USER, string>): string {
  const services = Object.keys(BUS_ROLES) as ServiceName[];
  const users = services.map((service) => {
    const p = natsPermissions(service);
    return `    { user: ${q(service)}, password: ${q(passwords[service])}, permissions: { publish: ${allowOnly(p.publish)}, subscribe: ${allowOnly(p.subscribe)} } }`;
  });
  users.push(`    { user: ${q(NATS_ADMIN_USER)}, password: ${q(passwords[NATS_ADMIN_USER])} }`);
  return `authorization {\n  users = [\n${users.join('\n')}\n  ]\n}\n`;
}

/** An empty allow list means "everything" to nats-server: nothing allowed has to be an explicit deny. */
function allowOnly(subjects: readonly string[]): string {
  return subjects.length === 0 ? `{ deny: [">"] }` : `{ allow: [${subjects.map(q).join(', ')}] }`;
}

/** A quoted string in the server's config syntax (JSON strings are valid there). */
const q = (s: string) => JSON.stringify(s);

function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}
