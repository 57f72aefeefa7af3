import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy, DiscardPolicy, nanos } from 'nats';
import { freePort, startNatsServer, type LocalServer } from '@llmgw/local-infra';
import { createLogger, silentLogger } from '@llmgw/logging';
import { connectNatsBus, MemoryEventBus, PoisonEventError, Subjects, type DeadLetter, type EventBus } from './index.js';

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
  ['memory', async (): Promise<EventBus> => new MemoryEventBus({ redeliverDelayMs: 50, maxDeliver: 3 })],
  ['nats', async (): Promise<EventBus> => connectNatsBus({ url: nats.url, name: 'bus-test', logger: silentLogger(), settings: { ackWaitMs: 1_000, maxDeliver: 3 } })],
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
    const deliveries: [boolean, number][] = [];
    const stop = await bus.consume(Subjects.usageRecorded, durable, async (d, info) => {
      if (text(d) !== id) return;
      deliveries.push([info.redelivered, info.deliveryCount]);
      if (deliveries.length === 1) throw new Error('store down');
    });
    await bus.publish(Subjects.usageRecorded, bytes(id), id);
    await waitFor(() => deliveries.length >= 2);
    expect(deliveries.slice(0, 2)).toEqual([[false, 1], [true, 2]]);
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

  it('sends a poison event to the dead letter at once, raw, and never redelivers it', async () => {
    const bus = await connect();
    const durable = `poison-${++durableSeq}`;
    const id = `evt-p-${durableSeq}-${Date.now()}`;
    let deliveries = 0;
    const dead: DeadLetter[] = [];
    const inDeadLetter: string[] = [];
    const stopDl = await bus.consume(Subjects.usageDeadLetter, `dl-${durableSeq}`, async (d) => {
      inDeadLetter.push(text(d));
    });
    const stop = await bus.consume(
      Subjects.usageRecorded,
      durable,
      async (d) => {
        if (text(d) !== id) return;
        deliveries++;
        throw new PoisonEventError('negative_tokens', 'input_tokens is -1');
      },
      { onDeadLetter: (dl) => dead.push(dl) },
    );
    await bus.publish(Subjects.usageRecorded, bytes(id), id);
    await waitFor(() => dead.length === 1 && inDeadLetter.includes(id));
    expect(dead[0]).toMatchObject({ stream: 'USAGE', consumer: durable, subject: Subjects.usageRecorded, reason: 'poison', error: 'input_tokens is -1', deliveryCount: 1 });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(deliveries).toBe(1);
    expect(dead).toHaveLength(1);
    await stop();
    await stopDl();
    await bus.close();
  });

  it('sends an event to the dead letter after maxDeliver failed deliveries', async () => {
    const bus = await connect();
    const durable = `maxdeliver-${++durableSeq}`;
    const id = `evt-m-${durableSeq}-${Date.now()}`;
    const counts: number[] = [];
    const dead: DeadLetter[] = [];
    const stop = await bus.consume(
      Subjects.usageRecorded,
      durable,
      async (d, info) => {
        if (text(d) !== id) return;
        counts.push(info.deliveryCount);
        throw new Error('store down');
      },
      { onDeadLetter: (dl) => dead.push(dl) },
    );
    await bus.publish(Subjects.usageRecorded, bytes(id), id);
    await waitFor(() => dead.length === 1, 15_000);
    expect(counts).toEqual([1, 2, 3]);
    expect(dead[0]).toMatchObject({ reason: 'max_deliver', error: 'store down', deliveryCount: 3 });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(counts).toHaveLength(3);
    await stop();
    await bus.close();
  });

  it('reports consuming, then stopped', async () => {
    const bus = await connect();
    const states: string[] = [];
    const stop = await bus.consume(Subjects.usageRecorded, `state-${++durableSeq}`, async () => undefined, { onStateChange: (s) => states.push(s) });
    expect(states).toEqual(['consuming']);
    await stop();
    expect(states).toEqual(['consuming', 'stopped']);
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

  // Found by the fuzz test: a request id with a CR/LF made the header throw out of publish, and
  // the executor died of the unhandled rejection.
  it('rejects a publish whose message id is not a valid header value, without throwing', async () => {
    const bus = await connectNatsBus({ url: nats.url, name: 'bus-test', logger: silentLogger() });
    let p: Promise<void> | undefined;
    expect(() => {
      p = bus.publish(Subjects.usageRecorded, bytes('x'), 'id\r\nx');
    }).not.toThrow();
    await expect(p).rejects.toThrow(/header/);
    await bus.close();
  });

  it('stores a dead letter with headers naming why, the original sequence and the consumer', async () => {
    const bus = await connectNatsBus({ url: nats.url, name: 'bus-test', logger: silentLogger() });
    const id = `evt-h-${Date.now()}`;
    const stop = await bus.consume(Subjects.usageRecorded, `headers-${++durableSeq}`, async (d) => {
      if (text(d) === id) throw new PoisonEventError('unknown_tenant', 'tenant nobody is not configured');
    });
    await bus.publish(Subjects.usageRecorded, bytes(id), id);
    const jsm = await bus.connection!.jetstreamManager();
    let dl: Awaited<ReturnType<typeof jsm.streams.getMessage>> | undefined;
    const deadline = Date.now() + 5_000;
    while (!dl || text(dl.data) !== id) {
      if (Date.now() > deadline) throw new Error('no dead letter');
      dl = await jsm.streams.getMessage('DEADLETTER', { last_by_subj: Subjects.usageDeadLetter }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 50));
    }
    const original = await jsm.streams.getMessage('USAGE', { seq: Number(dl.header.get('Llmgw-Original-Seq')) });
    expect(text(original.data)).toBe(id);
    expect({
      reason: dl.header.get('Llmgw-Dead-Letter-Reason'),
      error: dl.header.get('Llmgw-Dead-Letter-Error'),
      subject: dl.header.get('Llmgw-Original-Subject'),
      stream: dl.header.get('Llmgw-Original-Stream'),
      consumer: dl.header.get('Llmgw-Consumer'),
      deliveries: dl.header.get('Llmgw-Deliveries'),
    }).toEqual({ reason: 'poison', error: 'tenant nobody is not configured', subject: Subjects.usageRecorded, stream: 'USAGE', consumer: `headers-${durableSeq}`, deliveries: '1' });
    await stop();
    await bus.close();
  });

  it('creates the streams with their limits and updates a stream and a consumer whose settings differ', async () => {
    const server = await startNatsServer();
    try {
      const first = await connectNatsBus({ url: server.url, name: 'topology-test', logger: silentLogger(), settings: { ackWaitMs: 5_000, usageMaxAgeMs: 2 * 86_400_000 } });
      const stop = await first.consume(Subjects.usageRecorded, 'topo', async () => undefined);
      await stop();
      await first.close();

      const lines: string[] = [];
      const logger = createLogger({ service: 'test', destination: { write: (l: string) => void lines.push(l) } });
      const bus = await connectNatsBus({ url: server.url, name: 'topology-test', logger, settings: { ackWaitMs: 7_000, maxDeliver: 4 } });
      const stop2 = await bus.consume(Subjects.usageRecorded, 'topo', async () => undefined);
      const jsm = await bus.connection!.jetstreamManager();
      const usage = (await jsm.streams.info('USAGE')).config;
      expect(usage).toMatchObject({
        subjects: ['llmgateway.usage.v1.>'],
        max_age: nanos(7 * 86_400_000),
        max_bytes: 8 * 1024 ** 3,
        duplicate_window: nanos(600_000),
        num_replicas: 1,
        discard: DiscardPolicy.Old,
      });
      expect((await jsm.streams.info('DEADLETTER')).config.subjects).toEqual(['llmgateway.deadletter.v1.>']);
      const consumer = (await jsm.consumers.info('USAGE', 'topo')).config;
      expect(consumer).toMatchObject({ ack_wait: nanos(7_000), max_deliver: 5, max_ack_pending: 10_000, ack_policy: AckPolicy.Explicit });
      expect(lines.some((l) => l.includes('JetStream stream updated') && l.includes('max_age'))).toBe(true);
      expect(lines.some((l) => l.includes('JetStream consumer updated') && l.includes('ack_wait') && l.includes('max_deliver'))).toBe(true);

      // Settings JetStream cannot change in place are one clear error line each; the bus still works.
      lines.length = 0;
      await jsm.consumers.add('USAGE', { durable_name: 'topo-ack-all', ack_policy: AckPolicy.All, filter_subject: Subjects.usageRecorded });
      await stop2();
      await bus.close();
      const again = await connectNatsBus({ url: server.url, name: 'topology-test', logger });
      const stop3 = await again.consume(Subjects.usageRecorded, 'topo-ack-all', async () => undefined);
      const immutable = lines.filter((l) => l.includes('cannot be changed in place')).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(immutable).toMatchObject([{ consumer: 'topo-ack-all', want: { ack_policy: 'explicit' }, have: { ack_policy: 'all' } }]);
      await stop3();
      await again.close();
    } finally {
      await server.stop();
    }
  });

  it('starts degraded with NATS down: publish rejects at once, the consumer starts when the server appears', async () => {
    const port = await freePort();
    const states: string[] = [];
    const got: string[] = [];
    const bus = await connectNatsBus({ url: `nats://127.0.0.1:${port}`, name: 'degraded', logger: silentLogger(), connectTimeoutMs: 300 });
    let server: LocalServer | undefined;
    try {
      const stop = await bus.consume(Subjects.usageRecorded, 'degraded', async (d) => void got.push(text(d)), { onStateChange: (s) => states.push(s) });
      expect(states).toEqual(['stalled']);
      const t0 = Date.now();
      await expect(bus.publish(Subjects.usageRecorded, bytes('early'), 'early')).rejects.toThrow(/not connected/);
      expect(Date.now() - t0).toBeLessThan(100);

      server = await startNatsServer({ port });
      await bus.ready();
      await bus.publish(Subjects.usageRecorded, bytes('late'), 'late');
      await waitFor(() => got.includes('late'), 10_000);
      expect(states).toEqual(['stalled', 'consuming']);
      await stop();
    } finally {
      await bus.close();
      await server?.stop();
    }
  });

  it('resumes consuming after the server restarts, reporting stalled then consuming', async () => {
    const storeDir = mkdtempSync(join(tmpdir(), 'llmgw-nats-restart-'));
    let server = await startNatsServer({ storeDir });
    const states: string[] = [];
    const got: string[] = [];
    const bus = await connectNatsBus({ url: server.url, name: 'restart', logger: silentLogger() });
    try {
      const stop = await bus.consume(Subjects.usageRecorded, 'restart', async (d) => void got.push(text(d)), { onStateChange: (s) => states.push(s) });
      await bus.publish(Subjects.usageRecorded, bytes('before'), 'before');
      await waitFor(() => got.includes('before'));

      await server.stop();
      await waitFor(() => states.at(-1) === 'stalled');
      await expect(bus.publish(Subjects.usageRecorded, bytes('down'), 'down')).rejects.toThrow(/not connected/);
      server = await startNatsServer({ port: server.port, storeDir });
      await waitFor(() => states.at(-1) === 'consuming', 15_000);
      await waitFor(() => bus.isUp, 10_000);
      await bus.publish(Subjects.usageRecorded, bytes('after'), 'after');
      await waitFor(() => got.includes('after'), 15_000);
      expect(got.filter((g) => g === 'before')).toHaveLength(1);
      expect(states).toEqual(['consuming', 'stalled', 'consuming']);
      await stop();
    } finally {
      await bus.close();
      await server.stop();
      rmSync(storeDir, { recursive: true, force: true });
    }
  });

  it('dead-letters an event whose handler never finishes, on the spare delivery, without running the handler again', async () => {
    const bus = await connectNatsBus({ url: nats.url, name: 'bus-test', logger: silentLogger(), settings: { ackWaitMs: 1_000, maxDeliver: 2 } });
    const id = `evt-hang-${Date.now()}`;
    let runs = 0;
    const dead: DeadLetter[] = [];
    const stop = await bus.consume(
      Subjects.usageRecorded,
      `hang-${++durableSeq}`,
      async (d) => {
        if (text(d) !== id) return;
        runs++;
        await new Promise(() => undefined); // as if the process had died mid-handler
      },
      { onDeadLetter: (dl) => dead.push(dl) },
    );
    await bus.publish(Subjects.usageRecorded, bytes(id), id);
    await waitFor(() => dead.length === 1, 10_000);
    expect(runs).toBe(2);
    expect(dead[0]).toMatchObject({ reason: 'max_deliver', deliveryCount: 3 });
    await stop(); // bounded by ack_wait although the handler never returns
    await bus.close();
  });

  it('re-creates a consumer deleted under it and resumes', async () => {
    const bus = await connectNatsBus({ url: nats.url, name: 'bus-test', logger: silentLogger() });
    const durable = `deleted-${++durableSeq}`;
    const states: string[] = [];
    const got: string[] = [];
    const stop = await bus.consume(Subjects.usageRecorded, durable, async (d) => void got.push(text(d)), { onStateChange: (s) => states.push(s) });
    const jsm = await bus.connection!.jetstreamManager();
    await jsm.consumers.delete('USAGE', durable);
    await waitFor(() => states.includes('stalled'), 15_000);
    const id = `after-delete-${Date.now()}`;
    await bus.publish(Subjects.usageRecorded, bytes(id), id);
    await waitFor(() => got.includes(id), 15_000);
    expect(states).toEqual(['consuming', 'stalled', 'consuming']);
    await stop();
    await bus.close();
  });
});
