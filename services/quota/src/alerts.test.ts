import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryEventBus, Subjects } from '@llmgw/events';
import { silentLogger } from '@llmgw/logging';
import { BudgetAlertRaised } from '@llmgw/proto/quota';
import { AlertPublisher, alertMsgId } from './alerts.js';
import type { BudgetAlert } from './store.js';

const alert: BudgetAlert = { limit: 'tenant:usd_per_day', thresholdPercent: 80, limitValue: 10, used: 8, period: '2026-12-03' };

/** A bus that refuses the first `failures` publishes, as NATS does while it is down or electing a stream leader. */
function flakyBus(failures: number) {
  const bus = new MemoryEventBus();
  const attempts: string[] = [];
  const publish = bus.publish.bind(bus);
  bus.publish = (subject, data, msgId) => {
    attempts.push(msgId);
    return attempts.length <= failures ? Promise.reject(new Error('NATS not connected')) : publish(subject, data, msgId);
  };
  return { bus, attempts };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('AlertPublisher', () => {
  it('retries an alert the bus refused, with the same message id, until it is stored', async () => {
    vi.useFakeTimers();
    const { bus, attempts } = flakyBus(3);
    const stored: BudgetAlertRaised[] = [];
    await bus.consume(Subjects.budgetAlert, 'test', async (data) => void stored.push(BudgetAlertRaised.decode(data)));
    await new AlertPublisher(bus, silentLogger(), () => 0).publish('acme', [alert]);
    expect(stored).toEqual([]);
    // 1 s, 2 s, then 4 s later the fourth attempt is taken.
    await vi.advanceTimersByTimeAsync(7_000);
    expect(attempts).toEqual(Array(4).fill(alertMsgId('acme', alert)));
    expect(stored.map((a) => [a.tenantId, a.limit, a.thresholdPercent])).toEqual([['acme', 'tenant:usd_per_day', 80]]);
  });

  it('gives up after about four minutes', async () => {
    vi.useFakeTimers();
    const { bus, attempts } = flakyBus(Infinity);
    await new AlertPublisher(bus, silentLogger(), () => 0).publish('acme', [alert]);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(attempts).toHaveLength(13);
  });
});
