import { describe, expect, it } from 'vitest';
import { SERVICE_NAMES } from '@llmgw/runtime';
import { meshCredentials } from './index.js';

describe('meshCredentials', () => {
  it('gives every service its own NATS user, and its own Redis user to those that use Redis', () => {
    const creds = meshCredentials();
    const env = creds.serviceEnv({ redis: { port: 6400 }, nats: { port: 4300 } });
    expect(Object.keys(env).sort()).toEqual([...SERVICE_NAMES].sort());
    for (const service of SERVICE_NAMES) {
      expect(env[service]).toMatchObject({ NATS_URL: 'nats://127.0.0.1:4300', NATS_USER: service, NATS_PASSWORD: creds.natsUsers[service] });
    }
    expect(env.quota!.REDIS_URL).toBe(`redis://quota:${creds.redisUsers.quota}@127.0.0.1:6400`);
    expect(env['usage-accountant']!.REDIS_URL).toBe(`redis://usage-accountant:${creds.redisUsers['usage-accountant']}@127.0.0.1:6400`);
    expect(env.auth!.REDIS_URL).toContain('redis://auth:');
    expect(env['provider-executor']!.REDIS_URL).toContain('redis://provider-executor:');
    for (const service of ['edge', 'router'] as const) expect(env[service]!.REDIS_URL).toBeUndefined();
    expect(creds.serviceEnv({ nats: { port: 4300 } }).quota!.REDIS_URL).toBeUndefined();
    expect(env.quota!.NATS_STREAM_REPLICAS).toBeUndefined();
  });

  it('points every service at each node of a NATS cluster, its streams replicated on all of them', () => {
    const env = meshCredentials().serviceEnv({ nats: { ports: [4300, 4301, 4302] } });
    for (const service of SERVICE_NAMES) {
      expect(env[service]).toMatchObject({ NATS_URL: 'nats://127.0.0.1:4300,nats://127.0.0.1:4301,nats://127.0.0.1:4302', NATS_STREAM_REPLICAS: '3' });
    }
  });

  it('points the services that use Redis at every master of a Redis Cluster, each as its own user', () => {
    const creds = meshCredentials();
    const env = creds.serviceEnv({ nats: { port: 4300 }, redis: { ports: [6400, 6401, 6402] } });
    expect(env.quota!.REDIS_URL).toBe(`redis-cluster://quota:${creds.redisUsers.quota}@127.0.0.1:6400,127.0.0.1:6401,127.0.0.1:6402`);
    expect(env.edge!.REDIS_URL).toBeUndefined();
  });

  it('makes every password different, and different on every call', () => {
    const a = meshCredentials();
    const b = meshCredentials();
    const all = [...Object.values(a.redisUsers), ...Object.values(a.natsUsers), ...Object.values(b.redisUsers), ...Object.values(b.natsUsers)];
    expect(new Set(all).size).toBe(all.length);
    for (const p of all) expect(p).toMatch(/^[A-Za-z0-9_-]{32}$/);
  });
});
