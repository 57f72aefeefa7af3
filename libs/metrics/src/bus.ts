import { Counter, Gauge, type Registry } from 'prom-client';
import type { Metrics } from './metrics.js';

/*
 * Event-bus consumers (any service) and the usage-accountant. Labels are bounded: stream and
 * consumer names come from the topology, reasons from fixed sets.
 */

/** A durable consumer: its dead letters and whether it can consume. */
export interface BusConsumerMetrics {
  /** reason: "poison" (the handler refused the event) or "max_deliver". */
  deadLettered(stream: string, consumer: string, reason: string): void;
  consuming(consumer: string, up: boolean): void;
}

/** Usage-accountant: events it refused (each also one dead letter), by a fixed reason. */
export interface AccountantMetrics {
  refused(reason: string): void;
}

const busCache = new WeakMap<Registry, BusConsumerMetrics>();
const accountantCache = new WeakMap<Registry, AccountantMetrics>();

export function busConsumerMetrics(m: Metrics): BusConsumerMetrics {
  let cached = busCache.get(m.registry);
  if (cached) return cached;
  const dead = new Counter({
    name: 'llmgw_events_dead_lettered_total',
    help: 'Events sent to the dead-letter stream (never redelivered), by stream, consumer and reason. Any increase needs a human.',
    labelNames: ['stream', 'consumer', 'reason'],
    registers: [m.registry],
  });
  const up = new Gauge({
    name: 'llmgw_event_consumer_up',
    help: '1 while the durable consumer receives events, 0 while it cannot (no NATS, consumer or stream missing).',
    labelNames: ['consumer'],
    registers: [m.registry],
  });
  cached = {
    deadLettered: (stream, consumer, reason) => dead.labels(stream, consumer, reason).inc(),
    consuming: (consumer, isUp) => up.labels(consumer).set(isUp ? 1 : 0),
  };
  busCache.set(m.registry, cached);
  return cached;
}

export function accountantMetrics(m: Metrics): AccountantMetrics {
  let cached = accountantCache.get(m.registry);
  if (cached) return cached;
  const refused = new Counter({
    name: 'llmgw_usage_events_refused_total',
    help: 'Usage events the accountant refused to count (sent to the dead letter), by reason.',
    labelNames: ['reason'],
    registers: [m.registry],
  });
  cached = { refused: (reason) => refused.labels(reason).inc() };
  accountantCache.set(m.registry, cached);
  return cached;
}
