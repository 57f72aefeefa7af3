import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseEnv } from '@llmgw/config';
import { programArgs } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { runtimeEnvSchema, startServiceMetrics } from './index.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

describe('runtime environment', () => {
  it('is typed, with defaults; REDIS_URL is required only where the service uses Redis', () => {
    expect(parseEnv(runtimeEnvSchema(false), { NATS_URL: 'nats://n:4222' })).toEqual({ GATEWAY_CONFIG: 'config/gateway.yaml', NATS_URL: 'nats://n:4222', DRAIN_MS: 0 });
    expect(parseEnv(runtimeEnvSchema(true), { NATS_URL: 'nats://n:4222', REDIS_URL: 'redis://r:6379', DRAIN_MS: '5000', METRICS_PORT: '9464' })).toMatchObject({
      REDIS_URL: 'redis://r:6379',
      DRAIN_MS: 5_000,
      METRICS_PORT: 9_464,
    });
    let err: unknown;
    try {
      parseEnv(runtimeEnvSchema(true), { DRAIN_MS: 'abc', METRICS_PORT: 'x' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([
      'NATS_URL: is not set',
      'REDIS_URL: is not set',
      'DRAIN_MS: expected a non-negative integer, got "abc"',
      'METRICS_PORT: expected a port number (0-65535), got "x"',
    ]);
  });

  it('REDIS_URL names one server or a cluster; a bad one is quoted without its password', () => {
    const url = (REDIS_URL: string) => parseEnv(runtimeEnvSchema(true), { NATS_URL: 'nats://n:4222', REDIS_URL }).REDIS_URL;
    expect(url('redis-cluster://quota:s3cret@r1:7000,r2:7001')).toBe('redis-cluster://quota:s3cret@r1:7000,r2:7001');
    expect(url('rediss://r:6380')).toBe('rediss://r:6380');
    expect(() => url('redis-cluster://quota:s3cret@r1:x')).toThrow('REDIS_URL: expected a redis://, rediss:// or redis-cluster:// URL, got "redis-cluster://quota:***@r1:x"');
    expect(() => url('http://r:6379')).toThrow('got "http://r:6379"');
  });

  it('metrics are served only when a port is given', async () => {
    const none = await startServiceMetrics('quota', undefined, silentLogger());
    expect(none.port).toBeUndefined();
    const served = await startServiceMetrics('quota', 0, silentLogger(), 2);
    try {
      expect(served.port).toBeGreaterThan(0);
      expect(await (await fetch(`http://127.0.0.1:${served.port}/metrics`)).text()).toContain('service="quota"');
    } finally {
      await served.close();
    }
  });

  it('runServiceMain: one fatal line naming the environment\'s and the file\'s problems, exit code 1, nothing connected', () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-runtime-'));
    try {
      const path = join(dir, 'bad.yaml');
      writeFileSync(path, 'tiers: {}\ntenants: { acme: { tier: gold } }\n');
      const run = spawnSync(process.execPath, programArgs('services/quota/src/main.ts'), {
        cwd: REPO,
        // NATS and Redis at unreachable addresses: a config error must come before any connection attempt.
        env: { PATH: process.env.PATH, GATEWAY_CONFIG: path, NATS_URL: 'nats://127.0.0.1:1', REDIS_URL: 'redis://127.0.0.1:1', DRAIN_MS: 'abc', QUOTA_REDIS_TIMEOUT_MS: '-5' },
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(run.status).toBe(1);
      const fatal = run.stdout.split('\n').filter((l) => l.includes('"level":"fatal"'));
      expect(fatal).toHaveLength(1);
      expect(fatal[0]).toContain('DRAIN_MS: expected a non-negative integer, got \\"abc\\"');
      expect(fatal[0]).toContain('QUOTA_REDIS_TIMEOUT_MS: expected a non-negative integer, got \\"-5\\"');
      expect(fatal[0]).toContain('tenants.acme.tier: unknown tier \\"gold\\"');
      expect(fatal[0]).toContain(path);
      expect(run.stdout).not.toMatch(/cannot reach/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
