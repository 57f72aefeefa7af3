import type { MsgHdrs } from 'nats';
import { extractContext, injectContext, inSpan, SpanKind, tracingOn, type TextMapGetter, type TextMapSetter } from '@llmgw/tracing';

/** W3C trace context (`traceparent`, `tracestate`) in NATS message headers. */
export const natsHeaderCarrier: TextMapGetter<MsgHdrs> & TextMapSetter<MsgHdrs> = {
  keys: (h) => h.keys(),
  get: (h, key) => (h.has(key) ? h.get(key) : undefined),
  set: (h, key, value) => h.set(key, value),
};

/** Writes the publish span's context into a carrier of the message. */
export type InjectTrace = <C>(carrier: C, setter: TextMapSetter<C>) => void;

const NO_INJECT: InjectTrace = () => undefined;
const INJECT_ACTIVE: InjectTrace = (carrier, setter) => injectContext(carrier, setter);

/**
 * Runs one publish in its PRODUCER span ("send <subject>", OpenTelemetry messaging conventions),
 * ended when the bus stored the message or refused it; `publish` puts the span's context in the
 * message's headers with `inject`. Without tracing it just publishes.
 */
export function tracedPublish(subject: string, msgId: string, publish: (inject: InjectTrace) => Promise<void>): Promise<void> {
  if (!tracingOn()) return publish(NO_INJECT);
  const attributes = {
    'messaging.system': 'nats',
    'messaging.operation.type': 'send',
    'messaging.operation.name': 'send',
    'messaging.destination.name': subject,
    'messaging.message.id': msgId,
  };
  return inSpan(`send ${subject}`, SpanKind.PRODUCER, attributes, () => publish(INJECT_ACTIVE));
}

/**
 * Runs a consumer's handler for one message in its CONSUMER span ("process <subject>"), a child
 * of the publisher's context from the message headers, so that the handler's log lines and calls
 * join the publishing request's trace.
 */
export function tracedHandle<C>(subject: string, durable: string, carrier: C | undefined, getter: TextMapGetter<C>, deliveryCount: number, handle: () => Promise<void>): Promise<void> {
  if (!tracingOn()) return handle();
  const attributes = {
    'messaging.system': 'nats',
    'messaging.operation.type': 'process',
    'messaging.operation.name': 'process',
    'messaging.destination.name': subject,
    'messaging.consumer.group.name': durable,
    'messaging.message.delivery_count': deliveryCount,
  };
  return inSpan(`process ${subject}`, SpanKind.CONSUMER, attributes, handle, carrier === undefined ? undefined : extractContext(carrier, getter));
}
