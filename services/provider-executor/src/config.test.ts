import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadExecutorConfig } from './config.js';

const dirs: string[] = [];
function file(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'executor-config-'));
  dirs.push(dir);
  const path = join(dir, 'gateway.yaml');
  writeFileSync(path, text);
  return path;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const YAML = `
default_route: r
providers:
  oa: { kind: openai, base_url: "http://127.0.0.1:1/v1", api_key: "\${OPENAI_KEY}" }
models:
  m: { provider: oa, upstream_model: gpt-4o-mini, pricing: { input_per_million_usd: 1, output_per_million_usd: 4 } }
routes:
  r: { rules: [{ name: default, model: m }] }
tiers: { t: {} }
tenants: { acme: { tier: t } }
auth: { bootstrap_keys: "\${BOOTSTRAP_KEYS_THE_EXECUTOR_NEVER_READS}" }
`;

describe('loadExecutorConfig', () => {
  it('holds the providers section and nothing else, resolving only its own secrets', () => {
    const cfg = loadExecutorConfig(file(YAML), { OPENAI_KEY: 'sk-test' });
    expect(Object.keys(cfg.sections)).toEqual(['providers']);
    expect(cfg.sections.providers.oa).toMatchObject({ kind: 'openai', api_key: 'sk-test' });
    expect(cfg.outboxPath).toBeUndefined();
  });

  it('reads USAGE_OUTBOX_PATH from the environment', () => {
    expect(loadExecutorConfig(file(YAML), { OPENAI_KEY: 'k', USAGE_OUTBOX_PATH: '/var/lib/executor/outbox' }).outboxPath).toBe('/var/lib/executor/outbox');
    expect(loadExecutorConfig(file(YAML), { OPENAI_KEY: 'k', USAGE_OUTBOX_PATH: '' }).outboxPath).toBeUndefined();
  });

  it('reads USAGE_OUTBOX_MAX_BYTES, 64 MiB by default, and rejects a value that is not a positive integer', () => {
    expect(loadExecutorConfig(file(YAML), { OPENAI_KEY: 'k' }).outboxMaxBytes).toBe(64 * 1024 * 1024);
    expect(loadExecutorConfig(file(YAML), { OPENAI_KEY: 'k', USAGE_OUTBOX_MAX_BYTES: '1048576' }).outboxMaxBytes).toBe(1_048_576);
    expect(() => loadExecutorConfig(file(YAML), { OPENAI_KEY: 'k', USAGE_OUTBOX_MAX_BYTES: '0' })).toThrow(/USAGE_OUTBOX_MAX_BYTES/);
    expect(() => loadExecutorConfig(file(YAML), { OPENAI_KEY: 'k', USAGE_OUTBOX_MAX_BYTES: '64MB' })).toThrow(/USAGE_OUTBOX_MAX_BYTES/);
  });

  it('reads USAGE_OUTBOX_SYNC_MS, 0 (fsync before the call) by default, at most 1000', () => {
    expect(loadExecutorConfig(file(YAML), { OPENAI_KEY: 'k' }).outboxSyncMs).toBe(0);
    expect(loadExecutorConfig(file(YAML), { OPENAI_KEY: 'k', USAGE_OUTBOX_SYNC_MS: '10' }).outboxSyncMs).toBe(10);
    expect(() => loadExecutorConfig(file(YAML), { OPENAI_KEY: 'k', USAGE_OUTBOX_SYNC_MS: '5000' })).toThrow(/USAGE_OUTBOX_SYNC_MS/);
  });

  it('reads EXECUTOR_STATS_INTERVAL_MS, 5 s by default, 0 turning the stats broadcasts off', () => {
    expect(loadExecutorConfig(file(YAML), { OPENAI_KEY: 'k' }).statsIntervalMs).toBe(5_000);
    expect(loadExecutorConfig(file(YAML), { OPENAI_KEY: 'k', EXECUTOR_STATS_INTERVAL_MS: '250' }).statsIntervalMs).toBe(250);
    expect(loadExecutorConfig(file(YAML), { OPENAI_KEY: 'k', EXECUTOR_STATS_INTERVAL_MS: '0' }).statsIntervalMs).toBe(0);
    expect(() => loadExecutorConfig(file(YAML), { OPENAI_KEY: 'k', EXECUTOR_STATS_INTERVAL_MS: '-1' })).toThrow(/EXECUTOR_STATS_INTERVAL_MS/);
    expect(() => loadExecutorConfig(file(YAML), { OPENAI_KEY: 'k', EXECUTOR_STATS_INTERVAL_MS: '5s' })).toThrow(/EXECUTOR_STATS_INTERVAL_MS/);
  });

  it('fails naming an unset secret of its own section', () => {
    expect(() => loadExecutorConfig(file(YAML), {})).toThrow(/OPENAI_KEY/);
  });
});
