import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { authSectionsSchema, ConfigError, parseSections } from '@llmgw/config';
import { checkProfile, loadAuthConfig } from './config.js';

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

describe('production profile', () => {
  const fixture = fileURLToPath(new URL('./fixtures/production.yaml', import.meta.url));
  const adminDigest = 'a'.repeat(64);

  it('refuses the demo config: plaintext bootstrap keys, named by id, never by key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-auth-prod-'));
    try {
      const path = join(dir, 'gateway.yaml');
      writeFileSync(path, example);
      let err: unknown;
      try {
        loadAuthConfig(path, { LLMGW_PROFILE: 'production', DEMO_ADMIN_KEY: 'sk-a-real-looking-admin-key-123' });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      const message = (err as ConfigError).message;
      expect(message).toContain('LLMGW_PROFILE=production refuses api_keys with a plaintext key (ids: demo-startup, demo-enterprise, demo-admin)');
      expect(message).toContain('key_sha256');
      for (const secret of ['sk-demo-startup-0123456789abcdef', 'sk-demo-enterprise-0123456789abcdef', 'sk-a-real-looking-admin-key-123']) expect(message).not.toContain(secret);
      // The same file is fine in development, the default.
      expect(loadAuthConfig(path, {}).sections.api_keys).toHaveLength(3);
      expect(loadAuthConfig(path, { LLMGW_PROFILE: 'development' }).sections.api_keys).toHaveLength(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes a config whose bootstrap keys are digests, and names only the plaintext ones of a mixed config', () => {
    const { sections } = loadAuthConfig(fixture, { LLMGW_PROFILE: 'production', PROD_ADMIN_KEY_SHA256: adminDigest });
    expect(sections.api_keys.map((k) => [k.id, k.key, k.key_sha256])).toEqual([
      ['prod-acme', undefined, '5b4d3c0e9e0f1f2b6f1f4bd7c3d9fb0f4f3a1f9e3bb9b07a2f6c2f55b4d1c0a1'],
      ['prod-admin', undefined, adminDigest],
    ]);
    const mixed = parseSections(authSectionsSchema, `${readFileSync(fixture, 'utf8').replace('  - id: prod-admin', '  - { id: dev-leftover, tenant: acme, key: "sk-leftover-0123456789" }\n  - id: prod-admin')}`, 'mixed.yaml', {
      PROD_ADMIN_KEY_SHA256: adminDigest,
    });
    expect(() => checkProfile(mixed, 'production', 'mixed.yaml')).toThrow(/\(ids: dev-leftover\)/);
    expect(() => checkProfile(mixed, 'development', 'mixed.yaml')).not.toThrow();
  });

  it('a bad LLMGW_PROFILE is a start error naming it', () => {
    expect(() => loadAuthConfig(fixture, { LLMGW_PROFILE: 'staging', PROD_ADMIN_KEY_SHA256: adminDigest })).toThrow('LLMGW_PROFILE: expected one of development, production, got "staging"');
  });
});
