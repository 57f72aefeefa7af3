import { describe, expect, it } from 'vitest';
import { busSettingsFromEnv, consumerSpec, dedupeHorizonMs, DEFAULT_BUS_SETTINGS, nakDelayMs, streamFor, Subjects } from './index.js';

describe('bus topology', () => {
  it('reads its settings from the environment, with defaults', () => {
    expect(busSettingsFromEnv({})).toEqual(DEFAULT_BUS_SETTINGS);
    expect(busSettingsFromEnv({ NATS_STREAM_REPLICAS: '3', USAGE_ACK_WAIT_MS: '10000', USAGE_MAX_DELIVER: '5', USAGE_STREAM_MAX_BYTES: String(2 ** 34) })).toMatchObject({
      replicas: 3,
      ackWaitMs: 10_000,
      maxDeliver: 5,
      usageMaxBytes: 2 ** 34,
    });
  });

  it('names the variable of a bad value', () => {
    expect(() => busSettingsFromEnv({ USAGE_MAX_DELIVER: '0', NATS_STREAM_REPLICAS: 'x' })).toThrow(/NATS_STREAM_REPLICAS: expected an integer from 1 to 5.*USAGE_MAX_DELIVER/s);
    expect(() => busSettingsFromEnv({ USAGE_STREAM_MAX_AGE_MS: '60000' })).toThrow(/USAGE_STREAM_MAX_AGE_MS/);
  });

  it('keeps dedupe keys for the redelivery horizon plus a margin: ~42 min by default', () => {
    expect(dedupeHorizonMs(DEFAULT_BUS_SETTINGS)).toBe(21 * 90_000 + 600_000);
    // The duplicate window wins when redelivery is quick.
    expect(dedupeHorizonMs({ ...DEFAULT_BUS_SETTINGS, ackWaitMs: 1_000, maxDeliver: 1 })).toBe(600_000 + 600_000);
  });

  it('backs off redeliveries from 1 s to at most 60 s', () => {
    expect([1, 2, 3, 7, 8, 1_000].map(nakDelayMs)).toEqual([1_000, 2_000, 4_000, 60_000, 60_000, 60_000]);
  });

  it('maps subjects to streams and gives consumers a spare delivery', () => {
    expect(streamFor(Subjects.usageRecorded).name).toBe('USAGE');
    expect(streamFor(Subjects.usageDeadLetter).name).toBe('DEADLETTER');
    expect(() => streamFor('nowhere.x')).toThrow(/no stream holds subject nowhere.x/);
    expect(consumerSpec(Subjects.usageRecorded, 'usage-accountant', DEFAULT_BUS_SETTINGS)).toMatchObject({ stream: 'USAGE', maxDeliver: 20, serverMaxDeliver: 21 });
  });
});
