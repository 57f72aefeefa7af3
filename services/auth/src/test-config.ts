import { authSectionsSchema, parseSections, type AuthSections } from '@llmgw/config';
import { hashKey } from './key-hash.js';

export const TENANT_KEY = 'sk-test-tenant-0123456789abcdef';
export const ADMIN_KEY = 'sk-test-admin-0123456789abcdef';
export const HASHED_KEY = 'sk-test-hashed-only-0123456789';

/** Auth's sections of a test config (a provider with an unset key: auth never resolves it). */
export function authTestConfig(): AuthSections {
  return parseSections(
    authSectionsSchema,
    `
providers: { p: { kind: openai, base_url: "http://127.0.0.1:1/v1", api_key: "\${UNSET_PROVIDER_KEY}" } }
tiers: { startup: {}, enterprise: {} }
tenants: { acme: { tier: startup }, globex: { tier: enterprise }, ops: { tier: enterprise } }
api_keys:
  - { id: acme-key, tenant: acme, key: "${TENANT_KEY}", scopes: [chat] }
  - { id: globex-hashed, tenant: globex, key_sha256: "${hashKey(HASHED_KEY)}" }
  - { id: admin-key, tenant: ops, key: "${ADMIN_KEY}", admin: true }
auth: { cache_ttl_ms: 3000 }
`,
    'auth-test.yaml',
    {},
  );
}
