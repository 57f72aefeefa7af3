import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subjects, type EventBus, type EventHandler } from '@llmgw/events';
import { silentLogger } from '@llmgw/logging';
import { TokenSource, UsageRecorded } from '@llmgw/proto/v1';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UsagePublisher } from './usage-publisher.js';

/** A bus that rejects the first `failures` publishes, then stores; `gate` can hold publishes open. */
class FlakyBus implements EventBus {
  attempts = 0;
  readonly stored: { subject: string; msgId: string; event: UsageRecorded }[] = [];
  gate: Promise<void> | undefined;

  constructor(private failures: number) {}

  async publish(subject: string, data: Uint8Array, msgId: string): Promise<void> {
    this.attempts++;
    if (this.gate) await this.gate;
    if (this.failures > 0) {
      this.failures--;
      throw new Error('bus down');
    }
    this.stored.push({ subject, msgId, event: UsageRecorded.decode(data) });
  }

  setFailures(n: number): void {
    this.failures = n;
  }

  countOf(msgId: string): number {
    return this.stored.filter((s) => s.msgId === msgId).length;
  }

  async consume(_subject: string, _durable: string, _handler: EventHandler): Promise<() => Promise<void>> {
    return async () => undefined;
  }
  broadcast(): void {}
  onBroadcast(): () => void {
    return () => undefined;
  }
  async close(): Promise<void> {}
}

const event = (id: string, over: Partial<UsageRecorded> = {}): UsageRecorded =>
  UsageRecorded.fromPartial({
    eventId: id,
    requestId: id,
    tenantId: 'acme',
    keyId: 'k1',
    route: 'chat',
    model: 'small-fast',
    inputTokens: 10,
    outputTokens: 5,
    costMicros: 42,
    tokenSource: TokenSource.TOKEN_SOURCE_PROVIDER,
    success: true,
    occurredAt: new Date(1_700_000_000_000),
    ...over,
  });

const publishers: UsagePublisher[] = [];
const dirs: string[] = [];
function publisher(bus: EventBus, opts: ConstructorParameters<typeof UsagePublisher>[2] = { retryIntervalMs: 60_000 }): UsagePublisher {
  const p = new UsagePublisher(bus, silentLogger(), opts);
  publishers.push(p);
  return p;
}
function tempOutbox(): string {
  const dir = mkdtempSync(join(tmpdir(), 'edge-outbox-'));
  dirs.push(dir);
  return join(dir, 'usage-outbox');
}

afterEach(async () => {
  for (const p of publishers.splice(0)) await p.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('UsagePublisher', () => {
  it('publishes on the usage subject with the event id as the message id', async () => {
    const bus = new FlakyBus(0);
    const p = publisher(bus);
    p.publish(event('r1'));
    await p.flush();
    expect(bus.stored).toHaveLength(1);
    expect(bus.stored[0]).toMatchObject({ subject: Subjects.usageRecorded, msgId: 'r1' });
    expect(bus.stored[0]!.event).toEqual(event('r1'));
    expect(p.pending()).toBe(0);
  });

  it('does not publish synchronously (the response goes first)', async () => {
    const bus = new FlakyBus(0);
    const p = publisher(bus);
    p.publish(event('r1'));
    expect(bus.attempts).toBe(0);
    await p.flush();
    expect(bus.attempts).toBe(1);
  });

  it('keeps failed events in the outbox and publishes each exactly once when the bus is back', async () => {
    const bus = new FlakyBus(3);
    const p = publisher(bus);
    for (const id of ['a', 'b', 'c', 'd']) p.publish(event(id));
    // Wait only for the first sends: they meet the outage.
    await vi.waitFor(() => expect(bus.attempts).toBe(4));
    await new Promise((r) => setImmediate(r));
    // a, b and c failed; d went through.
    expect(bus.stored.map((s) => s.msgId)).toEqual(['d']);
    expect(p.pending()).toBe(3);
    await p.flush();
    expect(p.pending()).toBe(0);
    for (const id of ['a', 'b', 'c', 'd']) expect(bus.countOf(id)).toBe(1);
    expect(bus.stored.find((s) => s.msgId === 'b')!.event).toEqual(event('b'));
    await p.flush();
    expect(bus.stored).toHaveLength(4);
  });

  it('keeps the outbox while the bus stays down and retries on its timer', async () => {
    const bus = new FlakyBus(Number.POSITIVE_INFINITY);
    const p = publisher(bus, { retryIntervalMs: 10 });
    p.publish(event('x'));
    p.publish(event('y'));
    await p.flush();
    expect(p.pending()).toBe(2);
    const before = bus.attempts;
    await vi.waitFor(() => expect(bus.attempts).toBeGreaterThan(before + 1));
    expect(p.pending()).toBe(2);
    bus.setFailures(0);
    await vi.waitFor(() => expect(p.pending()).toBe(0));
    expect(bus.countOf('x')).toBe(1);
    expect(bus.countOf('y')).toBe(1);
  });

  it('leaves the outbox file for the next publisher, which publishes it', async () => {
    const path = tempOutbox();
    const down = new FlakyBus(Number.POSITIVE_INFINITY);
    const first = publisher(down, { outboxPath: path, retryIntervalMs: 60_000 });
    first.publish(event('e1', { inputTokens: 7 }));
    first.publish(event('e2', { success: false, errorCode: 'UNAVAILABLE' }));
    await first.close();
    expect(first.pending()).toBe(2);
    expect(readFileSync(path, 'utf8').trim().split('\n')).toHaveLength(2);

    const up = new FlakyBus(0);
    const second = publisher(up, { outboxPath: path, retryIntervalMs: 60_000 });
    expect(second.pending()).toBe(2);
    await second.flush();
    expect(second.pending()).toBe(0);
    expect(up.stored.map((s) => s.msgId).sort()).toEqual(['e1', 'e2']);
    expect(up.stored.find((s) => s.msgId === 'e1')!.event).toEqual(event('e1', { inputTokens: 7 }));
    expect(up.stored.find((s) => s.msgId === 'e2')!.event).toEqual(event('e2', { success: false, errorCode: 'UNAVAILABLE' }));
    expect(readFileSync(path, 'utf8')).toBe('');

    // Nothing is left for a third start.
    const third = publisher(new FlakyBus(0), { outboxPath: path, retryIntervalMs: 60_000 });
    expect(third.pending()).toBe(0);
  });

  it('writes no outbox file when everything was published', async () => {
    const path = tempOutbox();
    const p = publisher(new FlakyBus(0), { outboxPath: path, retryIntervalMs: 60_000 });
    p.publish(event('ok'));
    await p.close();
    expect(existsSync(path) ? readFileSync(path, 'utf8') : '').toBe('');
  });

  it('loads an outbox with blank lines and keeps what still fails', async () => {
    const path = tempOutbox();
    const line = (id: string) => Buffer.from(UsageRecorded.encode(event(id)).finish()).toString('base64');
    writeFileSync(path, `${line('l1')}\n\n${line('l2')}\n`);
    const bus = new FlakyBus(1);
    const p = publisher(bus, { outboxPath: path, retryIntervalMs: 60_000 });
    expect(p.pending()).toBe(2);
    await p.flush();
    // The first retry failed: the whole outbox stays, on disk too.
    expect(p.pending()).toBe(2);
    expect(readFileSync(path, 'utf8').trim().split('\n')).toHaveLength(2);
    await p.flush();
    expect(p.pending()).toBe(0);
    expect(bus.stored.map((s) => s.msgId).sort()).toEqual(['l1', 'l2']);
  });

  it('flush waits for publishes still in flight', async () => {
    const bus = new FlakyBus(0);
    let open!: () => void;
    bus.gate = new Promise<void>((resolve) => (open = resolve));
    const p = publisher(bus);
    p.publish(event('slow'));
    let flushed = false;
    const f = p.flush().then(() => (flushed = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(bus.attempts).toBe(1);
    expect(flushed).toBe(false);
    open();
    await f;
    expect(bus.countOf('slow')).toBe(1);
  });
});
