import { describe, expect, it } from 'vitest';
import { newApiKey, requireScope, visiblePrefix } from './index.js';

describe('requireScope', () => {
  it('lets a key do what its scopes list, and refuses the rest naming the scope', () => {
    const chatOnly = { admin: false, scopes: ['chat'] };
    expect(() => requireScope(chatOnly, 'chat')).not.toThrow();
    expect(() => requireScope(chatOnly, 'embed')).toThrow(expect.objectContaining({ kind: 'permission_denied', message: 'this key lacks the scope "embed"' }));
    expect(() => requireScope(chatOnly, 'usage:read')).toThrow(/usage:read/);
  });

  it('gives a key without a list everything but admin, and an admin key everything', () => {
    const unlisted = { admin: false, scopes: [] };
    for (const s of ['chat', 'embed', 'usage:read'] as const) expect(() => requireScope(unlisted, s)).not.toThrow();
    expect(() => requireScope(unlisted, 'admin')).toThrow(/admin/);
    expect(() => requireScope({ admin: true, scopes: ['chat'] }, 'usage:read')).not.toThrow();
  });
});

describe('visiblePrefix', () => {
  it('shows the type prefix and 4 characters of a key, never more', () => {
    const key = newApiKey();
    expect(visiblePrefix(key)).toBe(key.slice(0, 10));
    expect(visiblePrefix(key)).toMatch(/^llmgw_[0-9A-Za-z]{4}$/);
    expect(visiblePrefix('sk-test-tenant-0123456789abcdef')).toBe('sk-t');
  });
});
