import { parseGatewayConfig, type GatewayConfig } from '@llmgw/config';
import { hashKey } from './key-hash.js';

export const TENANT_KEY = 'sk-test-tenant-0123456789abcdef';
export const ADMIN_KEY = 'sk-test-admin-0123456789abcdef';
export const HASHED_KEY = 'sk-test-hashed-only-0123456789';

export function authTestConfig(): GatewayConfig {
  return parseGatewayConfig(
    `
default_route: r
providers: { p: { kind: openai, base_url: "http://127.0.0.1:1/v1" } }
models: { m: { provider: p, pricing: { input_per_million_usd: 1 } } }
routes: { r: { rules: [{ name: d, model: m }] } }
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
