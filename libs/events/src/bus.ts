/** Where events go. JetStream in microservices mode; in memory in monolithic mode. */
export interface EventBus {
  /**
   * Stores an event durably. A second publish with the same msgId inside the dedup window is
   * dropped, so a retried publish never counts twice. Resolves once the event is stored; rejects
   * promptly when the bus is not connected (callers keep their own outbox).
   */
  publish(subject: string, data: Uint8Array, msgId: string): Promise<void>;
  /**
   * Delivers every stored event of `subject` to the durable consumer `durable` at least once:
   * the handler resolving acknowledges it, throwing redelivers it later (with a growing delay).
   * After `maxDeliver` failed deliveries, or at once when the handler throws PoisonEventError,
   * the event goes to the dead letter (deadLetterSubject) and is never redelivered. Replicas
   * that use the same durable name share the work. Never throws for an unreachable server: it
   * keeps trying and reports through `opts.onStateChange`. Returns a function that stops consuming.
   */
  consume(subject: string, durable: string, handler: EventHandler, opts?: ConsumeOptions): Promise<() => Promise<void>>;
  /** Best-effort broadcast to every live subscriber (cache invalidation and the like). */
  broadcast(subject: string, data: Uint8Array): void;
  onBroadcast(subject: string, handler: (data: Uint8Array) => void): () => void;
  close(): Promise<void>;
}

export interface DeliveryInfo {
  redelivered: boolean;
  /** 1 on the first delivery. */
  deliveryCount: number;
  /** When the bus stored the event (epoch ms): the same on every delivery and in a replay. */
  storedAtMs: number;
}

export type EventHandler = (data: Uint8Array, info: DeliveryInfo) => Promise<void>;

/**
 * `consuming`: events are being delivered. `stalled`: the consumer cannot get events (no
 * connection, consumer or stream missing, JetStream unavailable) and is retrying.
 * `stopped`: the stop function was called.
 */
export type ConsumerState = 'consuming' | 'stalled' | 'stopped';

export type DeadLetterReason = 'poison' | 'max_deliver';

/** What the bus reports about an event it sent to the dead letter. */
export interface DeadLetter {
  stream: string;
  consumer: string;
  subject: string;
  reason: DeadLetterReason;
  /** The handler's last error message. */
  error: string;
  /** Stream sequence of the original (0 in memory). */
  seq: number;
  deliveryCount: number;
}

export interface ConsumeOptions {
  onStateChange?: (state: ConsumerState) => void;
  onDeadLetter?: (d: DeadLetter) => void;
}

/**
 * Thrown by a handler for an event that can never be processed (malformed, refers to nothing
 * known): the bus dead-letters it at once instead of redelivering it.
 */
export class PoisonEventError extends Error {
  override readonly name = 'PoisonEventError';
  /** A short, bounded label (a metric label value), e.g. "negative_tokens". */
  readonly reason: string;

  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** Headers of a dead letter, next to the raw event as its payload. */
export const DeadLetterHeaders = {
  reason: 'Llmgw-Dead-Letter-Reason',
  error: 'Llmgw-Dead-Letter-Error',
  subject: 'Llmgw-Original-Subject',
  stream: 'Llmgw-Original-Stream',
  seq: 'Llmgw-Original-Seq',
  consumer: 'Llmgw-Consumer',
  deliveries: 'Llmgw-Deliveries',
} as const;

/** Subjects mirror the proto packages of their payloads. */
export const Subjects = {
  usageRecorded: 'llmgateway.usage.v1.recorded',
  budgetAlert: 'llmgateway.alerts.v1.budget',
  tokenGrowthAlert: 'llmgateway.alerts.v1.token_growth',
  keyRevoked: 'llmgateway.auth.v1.key_revoked',
  backendHealth: 'llmgateway.executor.v1.backend_health',
  backendStats: 'llmgateway.executor.v1.backend_stats',
  usageDeadLetter: 'llmgateway.deadletter.v1.usage',
} as const;

/** Why a handler failure sends an event to the dead letter now, or undefined to redeliver it. */
export function deadLetterReason(err: unknown, deliveryCount: number, maxDeliver: number): DeadLetterReason | undefined {
  if (err instanceof PoisonEventError) return 'poison';
  return deliveryCount >= maxDeliver ? 'max_deliver' : undefined;
}

/** Bounded error text for a dead letter's header and log line (handler messages name ids, never secrets). */
export function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 300);
}
