import { z } from 'zod';

/**
 * Field schemas of the one config file, each defined once. They are composed into the full
 * `gatewayConfigSchema` (the whole-file check of the launcher and `npm run config:check`) and into
 * one view per service (sections.ts): each service validates and holds only its sections.
 */

const positiveInt = z.number().int().positive();

export const providerKinds = ['openai', 'azure-openai', 'anthropic', 'gemini'] as const;
export type ProviderKind = (typeof providerKinds)[number];

export const providerSchema = z.strictObject({
  /** Wire format: openai also covers vLLM, Ollama, LM Studio and other OpenAI-compatible servers. */
  kind: z.enum(providerKinds),
  base_url: z.url(),
  /** Secret, normally `${ENV_VAR}`; never logged. Optional for self-hosted servers. */
  api_key: z.string().default(''),
  /** Azure OpenAI `api-version`; Anthropic `anthropic-version`. */
  api_version: z.string().optional(),
  timeout_ms: positiveInt.default(30_000),
  /** Keep-alive connections per provider per executor replica. */
  max_connections: positiveInt.default(128),
});

export const capabilities = ['tools', 'json_object', 'json_schema', 'vision', 'streaming', 'embeddings'] as const;
export type Capability = (typeof capabilities)[number];

const usdPerMillion = z.number().nonnegative();

/**
 * One price of a model, in USD per million tokens. Input and output are required (an embeddings
 * model, which has no output, may leave output out); tokens read from or written to a prompt cache
 * cost the input price unless their own is given. Reasoning tokens are output tokens and cost the
 * output price, as the providers bill them.
 */
export const priceSchema = z.strictObject({
  input_per_million_usd: usdPerMillion,
  output_per_million_usd: usdPerMillion.optional(),
  cached_input_per_million_usd: usdPerMillion.optional(),
  cache_write_input_per_million_usd: usdPerMillion.optional(),
  /** When this price takes over from the one before, an RFC 3339 instant with offset; the first price has none. */
  effective_from: z.iso.datetime({ offset: true, error: 'expected an RFC 3339 date-time with offset, e.g. "2026-07-01T00:00:00Z"' }).optional(),
});

/** A model's price: every field resolved, in effect from `effectiveFromMs` (-Infinity for the first). */
export interface ResolvedPrice {
  input_per_million_usd: number;
  output_per_million_usd: number;
  cached_input_per_million_usd: number;
  cache_write_input_per_million_usd: number;
  effectiveFromMs: number;
}

/**
 * `pricing` is one price or a list of prices with effective dates, oldest first: the model is
 * priced at every instant, so that no request is ever costed at $0 for want of a price.
 */
const pricingSchema = z.union([priceSchema, z.array(priceSchema).min(1)]).transform((p) => (Array.isArray(p) ? p : [p]));

export const modelSchema = z
  .strictObject({
    provider: z.string().min(1),
    /** The provider's name for the model (Azure: the deployment); defaults to the model's key. */
    upstream_model: z.string().optional(),
    pricing: pricingSchema,
    context_tokens: positiveInt.default(128_000),
    max_output_tokens: positiveInt.default(4_096),
    capabilities: z.array(z.enum(capabilities)).default(['streaming']),
    /** Tokenizer family for estimates: exact for openai, documented approximation otherwise. */
    tokenizer: z.enum(['openai', 'approx']).default('approx'),
  })
  .transform((m, ctx) => {
    const embeddingsOnly = m.capabilities.length > 0 && m.capabilities.every((c) => c === 'embeddings');
    let previous = -Infinity;
    const prices: ResolvedPrice[] = m.pricing.map((p, i) => {
      const path = m.pricing.length > 1 ? ['pricing', i] : ['pricing'];
      const issue = (message: string) => ctx.addIssue({ code: 'custom', path, message });
      if (p.output_per_million_usd === undefined && !embeddingsOnly) {
        issue('incomplete price: output_per_million_usd is required (only an embeddings model may leave it out)');
      }
      const from = p.effective_from === undefined ? -Infinity : Date.parse(p.effective_from);
      if (i === 0 && p.effective_from !== undefined) issue('the first price has no effective_from: it is the price before any later one takes effect');
      if (i > 0 && p.effective_from === undefined) issue('every price after the first needs effective_from');
      else if (i > 0 && from <= previous) issue(`effective_from ${p.effective_from} is not after the price before it: list prices oldest first`);
      if (p.effective_from !== undefined) previous = from;
      return {
        input_per_million_usd: p.input_per_million_usd,
        output_per_million_usd: p.output_per_million_usd ?? 0,
        cached_input_per_million_usd: p.cached_input_per_million_usd ?? p.input_per_million_usd,
        cache_write_input_per_million_usd: p.cache_write_input_per_million_usd ?? p.input_per_million_usd,
        effectiveFromMs: from,
      };
    });
    return { ...m, pricing: prices };
  });

export const limitsSchema = z.strictObject({
  requests_per_minute: positiveInt.optional(),
  tokens_per_minute: positiveInt.optional(),
  tokens_per_day: positiveInt.optional(),
  usd_per_day: z.number().positive().optional(),
  usd_per_month: z.number().positive().optional(),
  concurrent_requests: positiveInt.optional(),
});
export type Limits = z.infer<typeof limitsSchema>;

const taskTypes = ['chat', 'summarization', 'extraction', 'classification', 'code', 'reasoning'] as const;
const qualityTiers = ['economy', 'standard', 'premium'] as const;
const latencyClasses = ['interactive', 'batch'] as const;
export const responseFormats = ['text', 'json_object', 'json_schema'] as const;
export type ResponseFormatName = (typeof responseFormats)[number];
export const fallbackTriggers = ['timeout', 'http_5xx', 'http_429', 'connection_error', 'schema_failure'] as const;
export type FallbackTriggerName = (typeof fallbackTriggers)[number];

const priorities = ['low', 'normal', 'high'] as const;

const tokenCount = z.number().int().nonnegative();

/** A share of a rule's traffic sent to another model, chosen by the caller's sticky bucket. */
export const splitArmSchema = z.strictObject({
  model: z.string().min(1),
  /** Fraction of the rule's traffic, e.g. 0.2 for 20%. */
  share: z.number().gt(0).lt(1),
  /** What the routing record calls the arm; defaults to its model. */
  name: z.string().min(1).optional(),
  /** Tried after the arm's model; unset: the rule's own model, then its fallback. */
  fallback: z.array(z.string()).optional(),
});

export const ruleSchema = z.strictObject({
  name: z.string().min(1),
  /** Every condition given must match; none given matches everything. */
  when: z
    .strictObject({
      task_type: z.array(z.enum(taskTypes)).optional(),
      quality_tier: z.array(z.enum(qualityTiers)).optional(),
      latency_class: z.array(z.enum(latencyClasses)).optional(),
      tenant_tier: z.array(z.string()).optional(),
      /** A request without a priority counts as normal. */
      priority: z.array(z.enum(priorities)).optional(),
      /** The intent the route's classifier (`intents.<route>`) gave the request. */
      intent: z.array(z.string().min(1)).optional(),
      /** true: requests that need JSON output (json_object or json_schema); false: the others. */
      json: z.boolean().optional(),
      /** Prompt size in tokens, both bounds inclusive. */
      prompt_tokens: z
        .strictObject({ min: tokenCount.optional(), max: tokenCount.optional() })
        .refine((r) => r.min === undefined || r.max === undefined || r.min <= r.max, { message: 'min must not exceed max' })
        .optional(),
    })
    .default({}),
  model: z.string().min(1),
  fallback: z.array(z.string()).default([]),
  /** A second attempt when the first has not answered in time; the first good answer wins. */
  hedge: z
    .strictObject({
      /** Delay before the second attempt; with after_p95, the delay until enough latencies are measured. */
      after_ms: positiveInt,
      /** Wait the measured p95 latency of the first attempt's model instead, within [min_ms, max_ms]. */
      after_p95: z.boolean().default(false),
      min_ms: z.number().int().nonnegative().default(0),
      max_ms: positiveInt.default(10_000),
      /** `next`: the second attempt goes to the plan's next model; `same`: to the same model again. */
      to: z.enum(['next', 'same']).default('next'),
    })
    .refine((h) => h.min_ms <= h.max_ms, { message: 'min_ms must not exceed max_ms' })
    .optional(),
  /** Weighted arms; the traffic their shares leave over keeps the rule's model and fallback. */
  split: z.array(splitArmSchema).default([]),
});

/**
 * When a route moves a model behind its healthy candidates, by what the executors measured over
 * their last minute (summed over replicas): a demoted model is still tried, last.
 */
export const demoteSchema = z
  .strictObject({
    /** Demote when errors / calls is above this fraction (e.g. 0.25). */
    error_rate_above: z.number().nonnegative().lt(1).optional(),
    /** Demote when the p95 latency of answered calls is above this, in ms. */
    p95_ms_above: positiveInt.optional(),
    /** Fewer calls than this in the window say nothing: no demotion. */
    min_calls: positiveInt.default(20),
  })
  .refine((d) => d.error_rate_above !== undefined || d.p95_ms_above !== undefined, { message: 'give error_rate_above, p95_ms_above or both' });

export const routeSchema = z.strictObject({
  /** Hard cap on max_tokens: a request over it is INVALID_ARGUMENT. */
  max_tokens: positiveInt.default(4_096),
  /** max_tokens used when the request gives none. */
  default_max_tokens: positiveInt.default(1_024),
  timeout_ms: positiveInt.default(30_000),
  /** Per-attempt timeout; defaults to the provider's. */
  attempt_timeout_ms: positiveInt.optional(),
  fallback_on: z.array(z.enum(fallbackTriggers)).default(['timeout', 'http_5xx', 'http_429', 'connection_error']),
  /** Retries per attempt for batch requests (interactive requests fall back at once). */
  batch_retries: z.number().int().nonnegative().default(2),
  retry_backoff_ms: positiveInt.default(200),
  /** First matching rule wins. */
  rules: z.array(ruleSchema).min(1),
  /** Max prompt size in tokens (guardrail). */
  max_prompt_tokens: positiveInt.optional(),
  /** Response modes this route allows (guardrail); default all. */
  allowed_response_formats: z.array(z.enum(responseFormats)).default([...responseFormats]),
  /** Tools callers may offer the model on this route (guardrail); unset allows any, [] none. */
  allowed_tools: z.array(z.string()).optional(),
  /**
   * An answer that does not match the request's json_schema is never returned as a success.
   * `repair`: the same model is asked once more with the validation errors, then as `fail`;
   * `fail`: the next model when `fallback_on` lists schema_failure, else the request fails.
   */
  on_schema_failure: z.enum(['repair', 'fail']).default('repair'),
  /** Routing by measured health; absent: models are never demoted. */
  demote: demoteSchema.optional(),
  /** The exact response cache (kept by the executor per tenant); absent: the route does not cache. */
  cache: z
    .strictObject({
      /** How long an answer is kept, in seconds. */
      ttl_s: positiveInt.max(30 * 86_400),
      /** Answers kept per tenant on this route; storing one more drops the oldest. */
      max_entries: positiveInt.max(1_000_000).default(10_000),
      /** Larger answers (encoded) are not stored. */
      max_entry_bytes: positiveInt.max(8 * 1024 * 1024).default(64 * 1024),
      /**
       * `deterministic`: requests at temperature 0 are cached, others when they ask (cache: use);
       * `requested`: only requests that ask.
       */
      cacheable: z.enum(['deterministic', 'requested']).default('deterministic'),
    })
    .optional(),
});

/** Fields of a tier; the router owns `allowed_models`, quota owns `limits`. */
export const tierFields = {
  limits: limitsSchema.default({}),
  /** Models this tier may use; empty means all. */
  allowed_models: z.array(z.string()).default([]),
};

/**
 * Fields of a tenant; auth and quota read `tier`, quota the limits, the router `allowed_models`,
 * the edge `log_prompts`.
 */
export const tenantFields = {
  tier: z.string().min(1),
  /** Overrides of the tier's limits. */
  limits: limitsSchema.default({}),
  /** Limits per route for this tenant. */
  route_limits: z.record(z.string(), limitsSchema).default({}),
  /** Limits per model for this tenant. */
  model_limits: z.record(z.string(), limitsSchema).default({}),
  /** Overrides the tier's list when given. */
  allowed_models: z.array(z.string()).optional(),
  /** Prompts and completions may appear in logs only when true. */
  log_prompts: z.boolean().default(false),
  /** The content policy (a name under `content_policies`) of the tenant's requests; unset: none. */
  content_policy: z.string().min(1).optional(),
  /** Per route the caller names: a content policy overriding `content_policy`. */
  route_policies: z.record(z.string(), z.string().min(1)).default({}),
};

export const tierSchema = z.strictObject(tierFields);
export const tenantSchema = z.strictObject(tenantFields);

/** What an API key may be allowed to do (enforced by the edge, the accountant and auth). */
export const SCOPES = ['chat', 'embed', 'usage:read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export const apiKeySchema = z
  .strictObject({
    id: z.string().min(1),
    tenant: z.string().min(1),
    /** The secret, normally `${ENV_VAR}`; hashed on load and never kept in clear. */
    key: z.string().min(16).optional(),
    /** Alternatively the hex SHA-256 of the secret, so the config holds no secret at all. */
    key_sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
    admin: z.boolean().default(false),
    /** What the key may do; none listed: everything but administer. */
    scopes: z.array(z.enum(SCOPES)).default([]),
    /**
     * When the key stops working: an RFC 3339 instant with its offset, e.g. "2026-01-31T00:00:00Z".
     * Not checked against the clock here (a file valid yesterday still loads): auth refuses the
     * key as expired from that instant on.
     */
    expires_at: z.iso.datetime({ offset: true, error: 'expected an RFC 3339 date-time with offset, e.g. "2026-01-31T00:00:00Z"' }).optional(),
  })
  .refine((k) => (k.key === undefined) !== (k.key_sha256 === undefined), {
    message: 'give exactly one of key or key_sha256',
  });

const storeDownDefaults = { rates: 'fail_open', budgets: 'fail_closed', concurrency: 'fail_open' } as const;

export const quotaPolicySchema = z
  .strictObject({
    /** What a limit class does when Redis is unreachable. */
    on_store_down: z
      .strictObject({
        rates: z.enum(['fail_open', 'fail_closed']).default('fail_open'),
        budgets: z.enum(['fail_open', 'fail_closed']).default('fail_closed'),
        concurrency: z.enum(['fail_open', 'fail_closed']).default('fail_open'),
      })
      .default({ ...storeDownDefaults }),
    /** Lease TTL of a concurrency slot: a crashed edge's slots come back after it. */
    lease_ttl_ms: positiveInt.default(120_000),
    /** How long a reservation waits for its usage event before it is considered expired. */
    reservation_ttl_ms: positiveInt.default(600_000),
    /**
     * How much longer its record is kept: a usage event arriving this late (redelivered, or held
     * in an executor's outbox through a NATS outage) still replaces the estimate instead of being
     * added to it. After both, the reservation stays at its reserved amount for good.
     */
    late_event_horizon_ms: z.number().int().nonnegative().default(900_000),
  })
  .default({ on_store_down: { ...storeDownDefaults }, lease_ttl_ms: 120_000, reservation_ttl_ms: 600_000, late_event_horizon_ms: 900_000 });
export type QuotaPolicy = z.infer<typeof quotaPolicySchema>;

export const authSettingsSchema = z
  .strictObject({ cache_ttl_ms: z.number().int().nonnegative().default(5_000) })
  .default({ cache_ttl_ms: 5_000 });

export const alertKinds = ['budget', 'token_growth'] as const;
export type AlertKind = (typeof alertKinds)[number];

export const webhookSchema = z.strictObject({
  /** What logs call it; the URL is never logged (chat webhooks carry their token in it). */
  name: z.string().min(1).max(64),
  /** Normally `${ENV_VAR}`. */
  url: z.url(),
  /** Signs every delivery (HMAC-SHA256, header x-llmgw-signature); normally `${ENV_VAR}`; never logged. */
  secret: z.string().min(16, { message: 'must be at least 16 characters' }),
  /** Alert kinds it receives; default all. */
  events: z.array(z.enum(alertKinds)).min(1).default([...alertKinds]),
  timeout_ms: positiveInt.max(60_000).default(5_000),
});

export const alertsSchema = z
  .strictObject({
    /**
     * A tenant's route whose tokens in the current or last complete hour exceed `factor` times its
     * hourly mean over the 24 hours before is growing suddenly (a loop, a leaked key): alerted once
     * per hour. Absent: no growth alerts.
     */
    token_growth: z
      .strictObject({
        factor: z.number().gt(1).default(3),
        /** Hours with fewer tokens than this never alert (a quiet route doubling is not news). */
        min_tokens: z.number().int().positive().default(10_000),
      })
      .optional(),
    webhooks: z.array(webhookSchema).max(16).default([]),
  })
  .superRefine((a, ctx) => {
    const names = new Set<string>();
    a.webhooks.forEach((w, i) => {
      if (names.has(w.name)) ctx.addIssue({ code: 'custom', path: ['webhooks', i, 'name'], message: `two webhooks are named "${w.name}"` });
      names.add(w.name);
    });
  })
  .default({ webhooks: [] });
export type AlertsConfig = z.infer<typeof alertsSchema>;
export type WebhookConfig = z.infer<typeof webhookSchema>;

const intentSchema = z.strictObject({
  /** Requests typical of the intent; each is embedded once per config version and cached. */
  examples: z.array(z.string().min(1).max(2_000)).min(1).max(200),
  /** Whole words (case-insensitive) that decide the intent when no exemplar is near enough. */
  keywords: z.array(z.string().min(1).max(64)).max(200).default([]),
});

/**
 * A route's intent classifier, owned by the edge: the last user message is embedded through the
 * gateway's own embedding route and given the intent of its nearest exemplar by cosine, if that
 * is at least `threshold`; else the first intent one of whose keywords it contains; else none.
 */
export const intentClassifierSchema = z.strictObject({
  /** The route that embeds (its model needs the `embeddings` capability). */
  embed_route: z.string().min(1),
  /** Who pays for embedding the exemplars (a request's own text is billed to its tenant). */
  tenant: z.string().min(1),
  threshold: z.number().gt(0).max(1).default(0.5),
  /** Characters of the message embedded, from its start; the rest does not change the intent much. */
  max_chars: positiveInt.max(32_000).default(2_000),
  intents: z.record(z.string().min(1).max(64), intentSchema).refine((r) => Object.keys(r).length > 0, { message: 'name at least one intent' }),
});
export type IntentClassifierConfig = z.infer<typeof intentClassifierSchema>;

/**
 * What the edge labels each request's usage with, besides its user and prompt version: `feature`,
 * the value of one allowlisted metadata key (other metadata never reaches the usage store).
 */
export const usageLabelsSchema = z
  .strictObject({
    /** The metadata key whose value is the request's feature (GetUsage group_by FEATURE); unset: no feature. */
    feature_key: z.string().min(1).max(64).optional(),
  })
  .default({});

/** A `{{name}}` placeholder of a template's system prompt. */
export const TEMPLATE_PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/** What a template version fills in where the request leaves a field unset. */
export const templateDefaultsSchema = z.strictObject({
  /** Only when the request names neither a route nor a model. */
  route: z.string().min(1).optional(),
  /** Only when the request names neither a route nor a model. */
  model: z.string().min(1).optional(),
  temperature: z.number().min(0).max(2).optional(),
  max_tokens: positiveInt.optional(),
  stop: z.array(z.string().min(1).max(64)).max(4).optional(),
  response_format: z
    .strictObject({
      type: z.enum(responseFormats),
      /** For json_schema: the schema as JSON text, and its name. */
      json_schema: z.string().min(2).optional(),
      schema_name: z.string().min(1).max(64).optional(),
    })
    .refine((f) => (f.type === 'json_schema') === (f.json_schema !== undefined), { message: 'json_schema is given exactly when type is json_schema' })
    .optional(),
});

/**
 * One version of a prompt template. A version is immutable: the edge refuses a reload that
 * changes the content of a version it already holds (add a new version instead).
 */
export const templateVersionSchema = z
  .strictObject({
    /** The system prompt; `{{name}}` is replaced by the request's value of variable `name`. */
    system: z.string().min(1).max(32_000),
    variables: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: 'a variable name is letters, digits and _' })).max(32).default([]),
    defaults: templateDefaultsSchema.default({}),
  })
  .superRefine((v, ctx) => {
    for (const [, name] of v.system.matchAll(TEMPLATE_PLACEHOLDER)) {
      if (name !== undefined && !v.variables.includes(name)) ctx.addIssue({ code: 'custom', path: ['system'], message: `{{${name}}} is not a declared variable` });
    }
    if (new Set(v.variables).size !== v.variables.length) ctx.addIssue({ code: 'custom', path: ['variables'], message: 'a variable is declared twice' });
  });

/**
 * A prompt template: immutable versions, the pinned one that requests naming no version get, and
 * a weighted rollout of others (sticky per end user, else per request) taking shares of them.
 */
export const templateSchema = z
  .strictObject({
    pinned: z.string().min(1),
    rollout: z.array(z.strictObject({ version: z.string().min(1), share: z.number().gt(0).max(1) })).default([]),
    // Names up to 63 characters: "<template>@<version>" fits a prompt_version (128).
    versions: z.record(z.string().min(1).max(63), templateVersionSchema),
  })
  .superRefine((t, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (!Object.hasOwn(t.versions, t.pinned)) issue(['pinned'], `unknown version "${t.pinned}"`);
    t.rollout.forEach((r, i) => {
      if (!Object.hasOwn(t.versions, r.version)) issue(['rollout', i, 'version'], `unknown version "${r.version}"`);
    });
    const total = t.rollout.reduce((sum, r) => sum + r.share, 0);
    // A rounding margin, as for a rule's split.
    if (total > 1 + 1e-9) issue(['rollout'], `shares sum to ${+total.toFixed(6)}, more than 1`);
  });
export type TemplateConfig = z.infer<typeof templateSchema>;
export type TemplateVersionConfig = z.infer<typeof templateVersionSchema>;

/** The content detectors of the edge (services/edge/src/content-policy.ts). */
export const CONTENT_DETECTORS = ['email', 'phone', 'card', 'iban', 'national_id', 'secret'] as const;
export type ContentDetector = (typeof CONTENT_DETECTORS)[number];

/**
 * What a match does: `block` refuses the request (or answer), `redact` replaces it by a placeholder
 * before the provider sees it (or before the caller does), `redact_logs` leaves the text as it is
 * and keeps the match out of the prompt log only.
 */
export const CONTENT_ACTIONS = ['block', 'redact', 'redact_logs'] as const;
export type ContentAction = (typeof CONTENT_ACTIONS)[number];

const validRegex = (pattern: string): boolean => {
  try {
    new RegExp(pattern, 'u');
    return true;
  } catch {
    return false;
  }
};

/**
 * A content policy, owned by the edge: detectors and deny patterns, each with an action, applied
 * to requests and, when listed in `apply_to`, to unary answers.
 */
export const contentPolicySchema = z.strictObject({
  detectors: z.partialRecord(z.enum(CONTENT_DETECTORS), z.enum(CONTENT_ACTIONS)).default({}),
  /** Patterns (JavaScript regular expressions, case-insensitive) the policy denies; `name` is what metrics, logs and placeholders show. */
  deny: z
    .array(
      z.strictObject({
        name: z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, 'lower-case letters, digits and "_", starting with a letter'),
        pattern: z.string().min(1).max(1_000).refine(validRegex, { message: 'not a valid regular expression' }),
        action: z.enum(CONTENT_ACTIONS).default('block'),
      }),
    )
    .default([]),
  apply_to: z.array(z.enum(['request', 'response'])).min(1).default(['request']),
  /** The status of a blocked request. */
  block_status: z.enum(['permission_denied', 'invalid_argument']).default('permission_denied'),
});
export type ContentPolicyConfig = z.infer<typeof contentPolicySchema>;

/** Every top-level section of the file, each defined once. */
export const sectionFields = {
  default_route: z.string().min(1),
  providers: z.record(z.string(), providerSchema),
  models: z.record(z.string(), modelSchema),
  routes: z.record(z.string(), routeSchema),
  tiers: z.record(z.string(), tierSchema),
  tenants: z.record(z.string(), tenantSchema),
  api_keys: z.array(apiKeySchema).default([]),
  quota: quotaPolicySchema,
  auth: authSettingsSchema,
  alerts: alertsSchema,
  /** Intent classifiers by route name. */
  intents: z.record(z.string(), intentClassifierSchema).default({}),
  usage_labels: usageLabelsSchema,
  /** Prompt templates by name (names up to 64 characters: they become part of the prompt version). */
  templates: z.record(z.string().min(1).max(64).regex(/^[^@]+$/, { message: 'a template name has no "@"' }), templateSchema).default({}),
  /** Content policies by name, given to tenants by `tenants.<id>.content_policy` and `route_policies`. */
  content_policies: z.record(z.string(), contentPolicySchema).default({}),
};

export type ProviderConfig = z.infer<typeof providerSchema>;
export type ModelConfig = z.infer<typeof modelSchema>;
export type RouteConfig = z.infer<typeof routeSchema>;
export type RuleConfig = z.infer<typeof ruleSchema>;
export type DemoteConfig = z.infer<typeof demoteSchema>;
export type SplitArmConfig = z.infer<typeof splitArmSchema>;
export type TenantConfig = z.infer<typeof tenantSchema>;
export type TierConfig = z.infer<typeof tierSchema>;
export type ApiKeyConfig = z.infer<typeof apiKeySchema>;
