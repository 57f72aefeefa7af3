import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { authSectionsSchema, ConfigError, parseSections, profileFromEnv } from './index.js';

const exampleText = readFileSync(new URL('../../../config/gateway.yaml', import.meta.url), 'utf8');

describe('LLMGW_PROFILE', () => {
  it('is development unless set to production; anything else is an error naming the variable', () => {
    expect(profileFromEnv({})).toBe('development');
    expect(profileFromEnv({ LLMGW_PROFILE: '' })).toBe('development');
    expect(profileFromEnv({ LLMGW_PROFILE: 'production' })).toBe('production');
    expect(() => profileFromEnv({ LLMGW_PROFILE: 'prod' })).toThrow(ConfigError);
    expect(() => profileFromEnv({ LLMGW_PROFILE: 'prod' })).toThrow('LLMGW_PROFILE: expected one of development, production, got "prod"');
  });
});

describe('api_keys[].expires_at', () => {
  const withExpiry = (value: string) => exampleText.replace('    tenant: acme\n', `    tenant: acme\n    expires_at: ${value}\n`);

  it('takes an RFC 3339 instant with its offset, in the past too (auth refuses the key, the file still loads)', () => {
    const cfg = parseSections(authSectionsSchema, withExpiry('"2031-01-31T12:00:00+01:00"'), 'g.yaml', {});
    expect(cfg.api_keys[0]?.expires_at).toBe('2031-01-31T12:00:00+01:00');
    expect(parseSections(authSectionsSchema, withExpiry('"2001-01-01T00:00:00Z"'), 'g.yaml', {}).api_keys[0]?.expires_at).toBe('2001-01-01T00:00:00Z');
  });

  it('refuses a date without a time or offset, naming the field', () => {
    for (const bad of ['"2031-01-31"', '"2031-01-31T12:00:00"', '"tomorrow"']) {
      expect(() => parseSections(authSectionsSchema, withExpiry(bad), 'g.yaml', {})).toThrow('api_keys.0.expires_at: expected an RFC 3339 date-time with offset');
    }
  });
});
