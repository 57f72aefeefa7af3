import { describe, expect, it } from 'vitest';
import { serverLimitsFromEnv } from './server.js';

describe('server limits from the environment', () => {
  it('defaults to 4 MiB messages, 1,000 streams a connection and 5 min connection age', () => {
    expect(serverLimitsFromEnv({})).toEqual({ maxReceiveBytes: 4 * 1024 * 1024, maxConcurrentStreams: 1_000, maxConnectionAgeMs: 300_000 });
  });

  it('takes overrides and refuses a bad value naming the variable', () => {
    expect(serverLimitsFromEnv({ GRPC_MAX_RECEIVE_BYTES: '1048576' }).maxReceiveBytes).toBe(1_048_576);
    expect(() => serverLimitsFromEnv({ GRPC_MAX_RECEIVE_BYTES: 'lots' })).toThrow(/GRPC_MAX_RECEIVE_BYTES/);
  });
});
