import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadGatewayConfig, parseGatewayConfig, tenantLimits, mayUseModel } from './index.js';

const example = new URL('../../../config/gateway.yaml', import.meta.url);

describe('gateway config', () => {
  it('loads the example config with env references resolved', () => {
    const cfg = loadGatewayConfig(example.pathname, { SIMULATOR_URL: 'http://127.0.0.1:9999' });
    expect(cfg.providers['sim-openai']?.base_url).toBe('http://127.0.0.1:9999/v1');
    expect(cfg.providers['sim-openai']?.api_key).toBe('sim-key');
    expect(tenantLimits(cfg, 'acme')).toMatchObject({ requests_per_minute: 120, tokens_per_day: 500_000 });
    expect(tenantLimits(cfg, 'globex')).toMatchObject({ requests_per_minute: 1200, usd_per_day: 500 });
    expect(mayUseModel(cfg, 'acme', 'large-reasoning')).toBe(false);
    expect(mayUseModel(cfg, 'globex', 'large-reasoning')).toBe(true);
  });

  it('names every problem at once, with where it is', () => {
    const text = readFileSync(example, 'utf8')
      .replace('provider: sim-anthropic', 'provider: nowhere')
      .replace('default_route: support-chat', 'default_route: missing-route')
      .replace('${OPENAI_API_KEY:-sim-key}', '${UNSET_PROVIDER_KEY}');
    let caught: unknown;
    try {
      parseGatewayConfig(text, 'bad.yaml', {});
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const message = (caught as ConfigError).message;
    expect(message).toContain('bad.yaml');
    expect(message).toContain('models.small-backup.provider: unknown provider "nowhere"');
    expect(message).toContain('default_route: unknown route "missing-route"');
    expect(message).toContain('UNSET_PROVIDER_KEY is not set');
  });

  it('rejects invalid YAML and unknown fields', () => {
    expect(() => parseGatewayConfig('a: [', 'x.yaml', {})).toThrow(/not valid YAML/);
    const text = readFileSync(example, 'utf8').replace('default_route: support-chat', 'default_route: support-chat\nsurprise: 1');
    expect(() => parseGatewayConfig(text, 'x.yaml', {})).toThrow(/surprise/);
  });
});
