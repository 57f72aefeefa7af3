/** Where events go. JetStream in microservices mode; in memory in monolithic mode. */
export interface EventBus {
  /**
   * Stores an event durably. A second publish with the same msgId inside the dedup window is
   * dropped, so a retried publish never counts twice. Resolves once the event is stored.
   */
  publish(subject: string, data: Uint8Array, msgId: string): Promise<void>;
  /**
   * Delivers every stored event of `subject` to the durable consumer `durable` at least once:
   * the handler resolving acknowledges it, throwing redelivers it later. Replicas that use the
   * same durable name share the work. Returns a function that stops consuming.
   */
  consume(subject: string, durable: string, handler: EventHandler): Promise<() => Promise<void>>;
  /** Best-effort broadcast to every live subscriber (cache invalidation and the like). */
  broadcast(subject: string, data: Uint8Array): void;
  onBroadcast(subject: string, handler: (data: Uint8Array) => void): () => void;
  close(): Promise<void>;
}

export interface DeliveryInfo {
  redelivered: boolean;
}

export type EventHandler = (data: Uint8Array, info: DeliveryInfo) => Promise<void>;

/** Subjects mirror the proto packages of their payloads. */
export const Subjects = {
  usageRecorded: 'llmgateway.usage.v1.recorded',
  budgetAlert: 'llmgateway.alerts.v1.budget',
  keyRevoked: 'llmgateway.auth.v1.key_revoked',
  backendHealth: 'llmgateway.executor.v1.backend_health',
} as const;

/** JetStream streams and the subjects they hold. */
export const Streams = [
  { name: 'USAGE', subjects: ['llmgateway.usage.v1.>'] },
  { name: 'ALERTS', subjects: ['llmgateway.alerts.v1.>'] },
] as const;

export function streamFor(subject: string): string {
  const stream = Streams.find((s) => s.subjects.some((p) => subject.startsWith(p.slice(0, -1))));
  if (!stream) throw new Error(`no stream holds subject ${subject}`);
  return stream.name;
}
