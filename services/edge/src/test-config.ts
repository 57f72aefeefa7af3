import { parseGatewayConfig, type GatewayConfig } from '@llmgw/config';

/** The config the edge's unit tests run against: two chat models, an embedding model, guarded routes. */
export const TEST_CONFIG_YAML = `
default_route: chat
providers:
  sim-openai: { kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: sim-key, timeout_ms: 5000 }
  sim-anthropic: { kind: anthropic, base_url: "http://127.0.0.1:9", api_key: sim-key, api_version: "2023-06-01" }
models:
  small-fast:
    provider: sim-openai
    upstream_model: gpt-4o-mini
    pricing: { input_per_million_usd: 0.15, output_per_million_usd: 0.60 }
    capabilities: [tools, json_object, json_schema, streaming]
    tokenizer: openai
  claude:
    provider: sim-anthropic
    upstream_model: claude-haiku-4-5
    pricing: { input_per_million_usd: 1.00, output_per_million_usd: 5.00 }
    capabilities: [tools, json_object, streaming]
  embed-small:
    provider: sim-openai
    pricing: { input_per_million_usd: 0.02 }
    capabilities: [embeddings]
    tokenizer: openai
routes:
  chat:
    max_tokens: 2048
    default_max_tokens: 256
    timeout_ms: 10000
    rules: [{ name: default, model: small-fast, fallback: [claude] }]
  fallback:
    max_tokens: 1024
    default_max_tokens: 128
    rules: [{ name: only, model: claude }]
  guarded:
    max_prompt_tokens: 100
    rules: [{ name: only, model: small-fast }]
  tiny-prompt:
    max_prompt_tokens: 5
    rules: [{ name: only, model: small-fast }]
  locked-down:
    allowed_response_formats: [text]
    allowed_tools: [lookup_order]
    rules: [{ name: only, model: small-fast }]
  embeddings:
    max_tokens: 1
    default_max_tokens: 1
    timeout_ms: 4000
    rules: [{ name: only, model: embed-small }]
tiers:
  startup: { limits: { requests_per_minute: 120 } }
tenants:
  acme: { tier: startup }
  startup-co: { tier: startup }
`;

export function edgeTestConfig(): GatewayConfig {
  return parseGatewayConfig(TEST_CONFIG_YAML, 'edge test config', {});
}
