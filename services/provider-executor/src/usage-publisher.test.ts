import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subjects, type EventBus, type EventHandler } from '@llmgw/events';
import { AppError } from '@llmgw/errors';
import { silentLogger } from '@llmgw/logging';
import { AttemptUsage, TokenSource, UsageRecorded } from '@llmgw/proto/v1';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UsagePublisher, type UsagePublisherOptions } from './usage-publisher.js';

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
async function publisher(bus: EventBus, opts: UsagePublisherOptions = { retryIntervalMs: 60_000 }): Promise<UsagePublisher> {
  const p = await UsagePublisher.open(bus, silentLogger(), opts);
  publishers.push(p);
  return p;
}
function tempOutbox(): string {
  const dir = mkdtempSync(join(tmpdir(), 'executor-outbox-'));
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
    const p = await publisher(bus);
    p.publish(event('r1'));
    await p.flush();
    expect(bus.stored).toHaveLength(1);
    expect(bus.stored[0]).toMatchObject({ subject: Subjects.usageRecorded, msgId: 'r1' });
    expect(bus.stored[0]!.event).toEqual(event('r1'));
    expect(p.pending()).toBe(0);
  });

  it('does not publish synchronously (the response goes first)', async () => {
    const bus = new FlakyBus(0);
    const p = await publisher(bus);
    p.publish(event('r1'));
    expect(bus.attempts).toBe(0);
    await p.flush();
    expect(bus.attempts).toBe(1);
  });

  it('keeps failed events in the outbox and publishes each exactly once when the bus is back', async () => {
    const bus = new FlakyBus(3);
    const p = await publisher(bus);
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
    const p = await publisher(bus, { retryIntervalMs: 10 });
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

  it('leaves unpublished events in the journal for the next publisher, which publishes them', async () => {
    const path = tempOutbox();
    const down = new FlakyBus(Number.POSITIVE_INFINITY);
    const first = await publisher(down, { outboxPath: path, retryIntervalMs: 60_000 });
    first.publish(event('e1', { inputTokens: 7 }));
    first.publish(event('e2', { success: false, errorCode: 'UNAVAILABLE' }));
    await first.close();
    expect(first.pending()).toBe(2);

    const up = new FlakyBus(0);
    const second = await publisher(up, { outboxPath: path, retryIntervalMs: 60_000 });
    await second.flush();
    expect(second.pending()).toBe(0);
    expect(up.stored.map((s) => s.msgId).sort()).toEqual(['e1', 'e2']);
    expect(up.stored.find((s) => s.msgId === 'e1')!.event).toEqual(event('e1', { inputTokens: 7 }));
    expect(up.stored.find((s) => s.msgId === 'e2')!.event).toEqual(event('e2', { success: false, errorCode: 'UNAVAILABLE' }));
    await second.close();

    // The acknowledgements were recorded: nothing is left for a third start.
    const third = await publisher(new FlakyBus(0), { outboxPath: path, retryIntervalMs: 60_000 });
    expect(third.pending()).toBe(0);
  });

  it('after a crash, publishes the write-ahead note of a request under way and the final event of one that ended', async () => {
    const path = tempOutbox();
    // Not closed before the restart, as after SIGKILL: what is on disk is all there is.
    const crashed = await publisher(new FlakyBus(0), { outboxPath: path, retryIntervalMs: 60_000 });
    const interrupted = event('in-flight', { success: false, errorCode: 'UNAVAILABLE', tokenSource: TokenSource.TOKEN_SOURCE_ESTIMATED });
    await crashed.note(interrupted);
    await crashed.note(event('ended', { tokenSource: TokenSource.TOKEN_SOURCE_ESTIMATED }));
    crashed.publish(event('ended'));
    await crashed.flush();

    const bus = new FlakyBus(0);
    const restarted = await publisher(bus, { outboxPath: path, retryIntervalMs: 60_000 });
    await restarted.flush();
    // The note of 'in-flight' is published as it was noted: estimated. 'ended' was acknowledged
    // before the crash; were its marker not on disk yet, its final event goes again (a duplicate the bus drops).
    expect(bus.stored.filter((s) => s.msgId === 'in-flight').map((s) => s.event)).toEqual([interrupted]);
    for (const s of bus.stored.filter((x) => x.msgId === 'ended')) expect(s.event).toEqual(event('ended'));
    expect(restarted.pending()).toBe(0);
  });

  it('with a sync delay, a note is on file at once and its fsync follows; the final is published only after its own', async () => {
    const path = tempOutbox();
    const bus = new FlakyBus(0);
    const crashed = await publisher(bus, { outboxPath: path, retryIntervalMs: 60_000, outboxSyncMs: 200 });
    const noted = Date.now();
    await crashed.note(event('r', { tokenSource: TokenSource.TOKEN_SOURCE_ESTIMATED, success: false }));
    expect(Date.now() - noted).toBeLessThan(150);
    // A crash now (nothing closed) still finds the note.
    const reader = await publisher(new FlakyBus(Number.POSITIVE_INFINITY), { outboxPath: path, retryIntervalMs: 60_000 });
    expect(reader.pending()).toBe(1);
    const published = Date.now();
    crashed.publish(event('r'));
    await crashed.flush();
    expect(bus.stored.map((s) => s.event)).toEqual([event('r')]);
    expect(Date.now() - published).toBeGreaterThanOrEqual(150);
  });

  it('sends the final event, not the note it replaced, when the bus was down until the restart', async () => {
    const path = tempOutbox();
    const crashed = await publisher(new FlakyBus(Number.POSITIVE_INFINITY), { outboxPath: path, retryIntervalMs: 60_000 });
    await crashed.note(event('r', { tokenSource: TokenSource.TOKEN_SOURCE_ESTIMATED, success: false }));
    crashed.publish(event('r'));
    await crashed.flush();
    expect(crashed.pending()).toBe(1);

    const bus = new FlakyBus(0);
    const restarted = await publisher(bus, { outboxPath: path, retryIntervalMs: 60_000 });
    await restarted.flush();
    expect(bus.stored.map((s) => s.event)).toEqual([event('r')]);
  });

  it('refuses a note when the outbox is full (no provider call), and still records requests already noted', async () => {
    const bus = new FlakyBus(Number.POSITIVE_INFINITY);
    const refused: number[] = [];
    const metrics = { usageEventPublished: () => undefined, observeOutbox: () => () => undefined, observeOutboxBytes: () => () => undefined, outboxRefused: () => void refused.push(1), request: () => undefined, spent: () => undefined };
    const p = await publisher(bus, { retryIntervalMs: 60_000, outboxMaxBytes: 150, metrics });
    await p.note(event('first'));
    await expect(p.note(event('second'))).rejects.toEqual(new AppError('unavailable', 'usage outbox full'));
    expect(refused).toHaveLength(1);
    // The noted request's final event is kept although it is larger than what is left.
    p.publish(event('first', { attempts: Array.from({ length: 5 }, () => AttemptUsage.fromPartial({ model: 'm', provider: 'p', inputTokens: 1, outputTokens: 1, costMicros: 1, tokenSource: 1, outcome: 1, reason: 'r' })) }));
    await p.flush();
    expect(p.pending()).toBe(1);
    bus.setFailures(0);
    await p.flush();
    expect(bus.countOf('first')).toBe(1);
    expect(p.pending()).toBe(0);
    await p.note(event('second'));
  });

  it('flush waits for publishes still in flight', async () => {
    const bus = new FlakyBus(0);
    let open!: () => void;
    bus.gate = new Promise<void>((resolve) => (open = resolve));
    const p = await publisher(bus);
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
