import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@llmgw/config';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadEdgeConfig } from './config.js';
import { edgeService } from './index.js';
import { TEST_CONFIG_YAML } from './test-config.js';

describe('edge config', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'edge-config-'));
    path = join(dir, 'gateway.yaml');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('holds only the tenants\' prompt-log policy and tier, the intent classifiers, the usage labels, the templates, the content policies (no provider, its unset secret included) and its variables', () => {
    writeFileSync(path, TEST_CONFIG_YAML);
    const cfg = loadEdgeConfig(path, { EDGE_PLAN_CACHE_MS: '0', POLICY_POLL_MS: '100' });
    expect(cfg).toEqual({
      sections: {
        tenants: {
          acme: { tier: 'startup', log_prompts: false, route_policies: {} },
          'startup-co': { tier: 'startup', log_prompts: false, route_policies: {} },
          chatty: { tier: 'startup', log_prompts: true, route_policies: {} },
        },
        intents: {},
        usage_labels: { feature_key: 'feature' },
        templates: { answer: expect.objectContaining({ pinned: 'v1' }) },
        content_policies: {},
      },
      planCacheMs: 0,
      policyPollMs: 100,
      reflection: true,
      publicTls: undefined,
      httpAddr: '127.0.0.1:8080',
      httpMaxBodyBytes: 4 * 1024 * 1024,
      multiplexedCalls: true,
      mux: { streams: 2, recycleMs: 30_000 },
      accessLog: true,
    });
    expect(loadEdgeConfig(path, {})).toMatchObject({ planCacheMs: 1_000, policyPollMs: 500 });
  });

  it('serves HTTP on EDGE_HTTP_ADDR ("off": none) with a body limit of EDGE_HTTP_MAX_BODY_BYTES', () => {
    writeFileSync(path, TEST_CONFIG_YAML);
    expect(loadEdgeConfig(path, { EDGE_HTTP_ADDR: '0.0.0.0:9000', EDGE_HTTP_MAX_BODY_BYTES: '65536' })).toMatchObject({ httpAddr: '0.0.0.0:9000', httpMaxBodyBytes: 65_536 });
    expect(loadEdgeConfig(path, { EDGE_MULTIPLEXED_CALLS: 'off' })).toMatchObject({ multiplexedCalls: false });
    expect(loadEdgeConfig(path, { EDGE_MUX_STREAMS: '6', EDGE_MUX_RECYCLE_MS: '1000' })).toMatchObject({ mux: { streams: 6, recycleMs: 1_000 } });
    expect(() => loadEdgeConfig(path, { EDGE_MUX_STREAMS: '0' })).toThrow(/EDGE_MUX_STREAMS/);
    expect(() => loadEdgeConfig(path, { EDGE_MULTIPLEXED_CALLS: 'maybe' })).toThrow(/EDGE_MULTIPLEXED_CALLS/);
    expect(loadEdgeConfig(path, { EDGE_ACCESS_LOG: 'off' })).toMatchObject({ accessLog: false });
    expect(loadEdgeConfig(path, { EDGE_HTTP_ADDR: 'off' }).httpAddr).toBeUndefined();
    expect(() => loadEdgeConfig(path, { EDGE_HTTP_MAX_BODY_BYTES: '10' })).toThrow(/EDGE_HTTP_MAX_BODY_BYTES/);
  });

  it('turns reflection off in production and takes public TLS files only as a pair', () => {
    writeFileSync(path, TEST_CONFIG_YAML);
    expect(loadEdgeConfig(path, { LLMGW_PROFILE: 'production' }).reflection).toBe(false);
    expect(loadEdgeConfig(path, { EDGE_TLS_CERT_FILE: '/c.pem', EDGE_TLS_KEY_FILE: '/k.pem' }).publicTls).toEqual({ certFile: '/c.pem', keyFile: '/k.pem' });
    expect(() => loadEdgeConfig(path, { EDGE_TLS_CERT_FILE: '/c.pem' })).toThrow(/EDGE_TLS_CERT_FILE and EDGE_TLS_KEY_FILE go together/);
  });

  it('names every problem of the file and the environment in one ConfigError', () => {
    writeFileSync(path, 'tenants:\n  acme: { tier: startup, log_prompts: sometimes }\n');
    let err: unknown;
    try {
      loadEdgeConfig(path, { EDGE_PLAN_CACHE_MS: '-1' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems.some((p) => p.startsWith('tenants.acme.log_prompts'))).toBe(true);
    expect(problems.some((p) => p.includes('EDGE_PLAN_CACHE_MS') && p.includes('"-1"'))).toBe(true);
  });

  it('is the service definition the runtime starts', () => {
    expect(edgeService).toMatchObject({ name: 'edge', needsRedis: false, loadConfig: loadEdgeConfig });
  });
});
