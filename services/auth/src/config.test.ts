import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@llmgw/config';
import { loadAuthConfig } from './config.js';

const example = readFileSync(new URL('../../../config/gateway.yaml', import.meta.url), 'utf8');

describe('auth config', () => {
  it('holds only the bootstrap keys, the tenants\' tiers and the auth settings; provider keys are never resolved', () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-auth-cfg-'));
    try {
      const path = join(dir, 'gateway.yaml');
      writeFileSync(path, example.replace('${OPENAI_API_KEY:-sim-key}', '${OPENAI_API_KEY}'));
      const { sections } = loadAuthConfig(path, {});
      expect(Object.keys(sections).sort()).toEqual(['api_keys', 'auth', 'tenants']);
      expect(sections.tenants.globex).toEqual({ tier: 'enterprise' });
      expect(sections.api_keys.map((k) => k.id)).toEqual(['demo-startup', 'demo-enterprise', 'demo-admin']);

      writeFileSync(path, example.replace('tenant: globex', 'tenant: initech'));
      expect(() => loadAuthConfig(path, {})).toThrow(ConfigError);
      expect(() => loadAuthConfig(path, {})).toThrow('api_keys.1.tenant: unknown tenant "initech"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
