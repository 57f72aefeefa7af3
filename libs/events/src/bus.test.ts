import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type LocalServer } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { connectNatsBus, MemoryEventBus, Subjects, type EventBus } from './index.js';

let nats: LocalServer;
beforeAll(async () => {
  nats = await startNatsServer();
});
afterAll(async () => {
  await nats?.stop();
});

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);
let durableSeq = 0;

async function waitFor(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

// One contract, two implementations: the in-memory bus of monolithic mode must behave as JetStream does.
describe.each([
  ['memory', async (): Promise<EventBus> => new MemoryEventBus({ redeliverDelayMs: 50 })],
  ['nats', async (): Promise<EventBus> => connectNatsBus({ url: nats.url, name: 'bus-test', logger: silentLogger(), ackWaitMs: 1_000 })],
])('%s event bus', (_name, connect) => {
  it('drops a second publish with the same message id', async () => {
    const bus = await connect();
    const durable = `dedup-${++durableSeq}`;
    const got: string[] = [];
    const stop = await bus.consume(Subjects.usageRecorded, durable, async (d) => {
      got.push(text(d));
    });
    const id = `evt-${durableSeq}-${Date.now()}`;
    await bus.publish(Subjects.usageRecorded, bytes(`${id}-a`), id);
    await bus.publish(Subjects.usageRecorded, bytes(`${id}-b`), id);
    await bus.publish(Subjects.usageRecorded, bytes(`${id}-c`), `${id}-other`);
    await waitFor(() => got.filter((g) => g.startsWith(id)).length >= 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(got.filter((g) => g.startsWith(id))).toEqual([`${id}-a`, `${id}-c`]);
    await stop();
    await bus.close();
  });

  it('redelivers an event whose handler failed, marked as redelivered', async () => {
    const bus = await connect();
    const durable = `redeliver-${++durableSeq}`;
    const id = `evt-r-${durableSeq}-${Date.now()}`;
    const deliveries: boolean[] = [];
    const stop = await bus.consume(Subjects.usageRecorded, durable, async (d, info) => {
      if (text(d) !== id) return;
      deliveries.push(info.redelivered);
      if (deliveries.length === 1) throw new Error('store down');
    });
    await bus.publish(Subjects.usageRecorded, bytes(id), id);
    await waitFor(() => deliveries.length >= 2);
    expect(deliveries.slice(0, 2)).toEqual([false, true]);
    await stop();
    await bus.close();
  });

  it('delivers events published before the durable consumer existed', async () => {
    const bus = await connect();
    const id = `evt-early-${++durableSeq}-${Date.now()}`;
    await bus.publish(Subjects.usageRecorded, bytes(id), id);
    const got: string[] = [];
    const stop = await bus.consume(Subjects.usageRecorded, `late-${durableSeq}`, async (d) => {
      got.push(text(d));
    });
    await waitFor(() => got.includes(id));
    await stop();
    await bus.close();
  });

  it('broadcasts to every live subscriber', async () => {
    const bus = await connect();
    const a: string[] = [];
    const b: string[] = [];
    const offA = bus.onBroadcast(Subjects.keyRevoked, (d) => a.push(text(d)));
    const offB = bus.onBroadcast(Subjects.keyRevoked, (d) => b.push(text(d)));
    await new Promise((r) => setTimeout(r, 50));
    bus.broadcast(Subjects.keyRevoked, bytes('key-1'));
    await waitFor(() => a.length === 1 && b.length === 1);
    offA();
    offB();
    await bus.close();
  });
});

describe('nats event bus', () => {
  it('rejects a publish no stream stores instead of pretending it was kept', async () => {
    const bus = await connectNatsBus({ url: nats.url, name: 'bus-test', logger: silentLogger() });
    await expect(bus.publish('nowhere.subject', bytes('x'), 'id-1')).rejects.toThrow(/no JetStream stream/);
    await bus.close();
  });

  it('names the server it cannot reach', async () => {
    await expect(connectNatsBus({ url: 'nats://127.0.0.1:1', name: 'x', logger: silentLogger(), connectTimeoutMs: 500 })).rejects.toThrow(
      /cannot reach NATS at nats:\/\/127.0.0.1:1/,
    );
  });
});
