import { parseSections, routerSectionsSchema, type RouterSections } from '@llmgw/config';

/**
 * A small config file for the router's tests; `defaultModel` lets reload tests change it. It is a
 * whole file (providers with an unresolved secret included): the router reads only its sections
 * and never needs the providers' keys.
 */
export function testPolicyYaml(defaultModel = 'small-fast'): string {
  return `
default_route: support-chat
providers:
  p-openai: { kind: openai, base_url: "http://127.0.0.1:1/v1", api_key: "\${ROUTER_TEST_UNSET_OPENAI_KEY}", timeout_ms: 20000 }
  p-anthropic: { kind: anthropic, base_url: "http://127.0.0.1:1", api_key: "\${ROUTER_TEST_UNSET_ANTHROPIC_KEY}", timeout_ms: 45000 }
models:
  small-fast:
    provider: p-openai
    upstream_model: gpt-4o-mini
    pricing: { input_per_million_usd: 0.15, output_per_million_usd: 0.6, cached_input_per_million_usd: 0.075 }
    context_tokens: 128000
    max_output_tokens: 16384
    capabilities: [tools, json_object, json_schema, streaming]
    tokenizer: openai
  small-backup:
    provider: p-anthropic
    pricing: { input_per_million_usd: 1, output_per_million_usd: 5 }
    context_tokens: 200000
    capabilities: [tools, json_object, streaming]
  large-reasoning:
    provider: p-openai
    upstream_model: o3
    pricing: { input_per_million_usd: 2, output_per_million_usd: 8 }
    context_tokens: 200000
    max_output_tokens: 100000
    capabilities: [tools, json_object, json_schema, streaming]
    tokenizer: openai
  coder:
    provider: p-openai
    pricing:
      - { input_per_million_usd: 1, output_per_million_usd: 4, cached_input_per_million_usd: 0.25 }
      - { effective_from: "2026-07-01T00:00:00Z", input_per_million_usd: 0.8, output_per_million_usd: 3.2, cached_input_per_million_usd: 0.2, cache_write_input_per_million_usd: 1 }
    context_tokens: 16000
    capabilities: [streaming]
  embed-small:
    provider: p-openai
    upstream_model: text-embedding-3-small
    pricing: { input_per_million_usd: 0.02 }
    context_tokens: 8192
    capabilities: [embeddings]
    tokenizer: openai
routes:
  support-chat:
    max_tokens: 4096
    default_max_tokens: 512
    timeout_ms: 30000
    fallback_on: [timeout, http_5xx, http_429, connection_error]
    rules:
      - name: premium-reasoning
        when: { quality_tier: [premium], tenant_tier: [enterprise] }
        model: large-reasoning
        fallback: [small-fast]
      - name: code
        when: { task_type: [code] }
        model: coder
        fallback: [small-fast]
      - name: batch
        when: { latency_class: [batch] }
        model: small-backup
        fallback: [small-fast]
      - name: default
        model: ${defaultModel}
        fallback: [small-backup]
  strict:
    max_tokens: 1024
    default_max_tokens: 256
    timeout_ms: 10000
    attempt_timeout_ms: 4000
    fallback_on: [schema_failure, http_5xx]
    batch_retries: 3
    retry_backoff_ms: 150
    rules:
      - name: only
        model: large-reasoning
        fallback: [small-backup]
  slow-attempts:
    timeout_ms: 5000
    attempt_timeout_ms: 60000
    rules:
      - name: only
        model: small-fast
  guarded:
    max_prompt_tokens: 100
    allowed_response_formats: [text, json_object]
    allowed_tools: [lookup_order]
    rules:
      - name: only
        model: small-fast
  no-tools:
    allowed_tools: []
    rules:
      - name: only
        model: small-fast
  embeddings:
    max_tokens: 1
    default_max_tokens: 1
    rules:
      - name: default
        model: embed-small
        fallback: [small-fast]
tiers:
  startup:
    limits: { requests_per_minute: 60 }
    allowed_models: [small-fast, small-backup, coder, embed-small]
  enterprise:
    allowed_models: []
tenants:
  acme: { tier: startup }
  globex: { tier: enterprise }
  tiny: { tier: startup, allowed_models: [small-backup] }
  coders: { tier: startup, allowed_models: [coder] }
  vip: { tier: startup, allowed_models: [large-reasoning, small-fast] }
  open: { tier: startup, allowed_models: [], log_prompts: true }
`;
}

export function testPolicy(defaultModel?: string): RouterSections {
  return parseSections(routerSectionsSchema, testPolicyYaml(defaultModel), 'router-test.yaml', {});
}
