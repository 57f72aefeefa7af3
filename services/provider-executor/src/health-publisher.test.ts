import { describe, expect, it } from 'vitest';
import { MemoryEventBus, Subjects } from '@llmgw/events';
import { silentLogger } from '@llmgw/logging';
import { BackendHealthChanged } from '@llmgw/proto/executor';
import { CircuitBreaker } from './circuit-breaker.js';
import { healthPublisher } from './health-publisher.js';

/** The router owns models: the provider of a model is what the plans said (here: a fixed map). */
const planned = new Map([['oa-gpt-4o-mini', 'oa']]);
const providerOf = (model: string) => planned.get(model) ?? '';

describe('healthPublisher', () => {
  it('broadcasts each breaker transition as BackendHealthChanged', async () => {
    const bus = new MemoryEventBus();
    const got: BackendHealthChanged[] = [];
    bus.onBroadcast(Subjects.backendHealth, (data) => got.push(BackendHealthChanged.decode(data)));
    const clock = { t: Date.UTC(2026, 0, 1) };
    const cb = new CircuitBreaker({
      failureThreshold: 2,
      openMs: 7_000,
      now: () => clock.t,
      onChange: healthPublisher({ bus, providerOf, replicaId: 'replica-1', logger: silentLogger() }),
    });
    cb.failure('oa-gpt-4o-mini', 'http_5xx');
    cb.failure('oa-gpt-4o-mini', 'http_5xx');
    clock.t += 7_000;
    expect(cb.allow('oa-gpt-4o-mini')).toBe(true);
    cb.success('oa-gpt-4o-mini');

    expect(got).toEqual([
      {
        model: 'oa-gpt-4o-mini',
        provider: 'oa',
        healthy: false,
        replicaId: 'replica-1',
        unhealthyForMs: 7_000,
        reason: '2 consecutive retriable failures (last: http_5xx)',
        occurredAt: new Date(Date.UTC(2026, 0, 1)),
      },
      {
        model: 'oa-gpt-4o-mini',
        provider: 'oa',
        healthy: true,
        replicaId: 'replica-1',
        unhealthyForMs: 0,
        reason: '',
        occurredAt: new Date(Date.UTC(2026, 0, 1) + 7_000),
      },
    ]);
    await bus.close();
  });

  it('never lets a failing broadcast reach the call that tripped the breaker', () => {
    const bus = {
      broadcast: () => {
        throw new Error('connection closed');
      },
    };
    const cb = new CircuitBreaker({ failureThreshold: 1, openMs: 1_000, now: () => 0, onChange: healthPublisher({ bus, providerOf, replicaId: 'r', logger: silentLogger() }) });
    expect(() => cb.failure('oa-gpt-4o-mini')).not.toThrow();
    expect(cb.isOpen('oa-gpt-4o-mini')).toBe(true);
  });
});

describe('healthPublisher provider names', () => {
  it('names the provider the plans gave for the model, and none for a model never planned', () => {
    const got: BackendHealthChanged[] = [];
    const bus = { broadcast: (_s: string, data: Uint8Array) => void got.push(BackendHealthChanged.decode(data)) };
    const cb = new CircuitBreaker({ failureThreshold: 1, openMs: 1_000, now: () => 0, onChange: healthPublisher({ bus, providerOf, replicaId: 'r', logger: silentLogger() }) });
    cb.failure('oa-gpt-4o-mini', 'timeout');
    cb.failure('never-planned', 'timeout');
    expect(got.map((e) => [e.model, e.provider])).toEqual([
      ['oa-gpt-4o-mini', 'oa'],
      ['never-planned', ''],
    ]);
  });
});
