import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  accountantSectionsSchema,
  authSectionsSchema,
  ConfigError,
  edgeSectionsSchema,
  envBool,
  envEnum,
  envInt,
  envMs,
  envPort,
  envString,
  envUrl,
  executorSectionsSchema,
  gatherConfig,
  loadGatewayConfig,
  loadSections,
  parseEnv,
  parseGatewayConfig,
  parseSections,
  quotaSectionsSchema,
  routerSectionsSchema,
} from './index.js';

const example = new URL('../../../config/gateway.yaml', import.meta.url);
const exampleText = readFileSync(example, 'utf8');

function problemsOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  throw new Error('expected a ConfigError');
}

describe('gateway config (the whole file)', () => {
  it('loads the example config with env references resolved', () => {
    const cfg = loadGatewayConfig(example.pathname, { SIMULATOR_URL: 'http://127.0.0.1:9999' });
    expect(cfg.providers['sim-openai']?.base_url).toBe('http://127.0.0.1:9999/v1');
    expect(cfg.providers['sim-openai']?.api_key).toBe('sim-key');
    expect(cfg.tiers.startup?.limits).toMatchObject({ requests_per_minute: 120, tokens_per_day: 500_000 });
    expect(cfg.tenants.globex).toMatchObject({ tier: 'enterprise', limits: { usd_per_day: 500 }, log_prompts: false });
  });

  it('names every problem at once, with where it is', () => {
    const text = exampleText
      .replace('provider: sim-anthropic', 'provider: nowhere')
      .replace('default_route: support-chat', 'default_route: missing-route')
      .replace('${OPENAI_API_KEY:-sim-key}', '${UNSET_PROVIDER_KEY}')
      .replace('  ops:\n    tier: enterprise', '  ops:\n    tier: platinum\n    route_limits: { nowhere: { requests_per_minute: 1 } }');
    const message = problemsOf(() => parseGatewayConfig(text, 'bad.yaml', {}));
    expect(message).toContain('bad.yaml');
    expect(message).toContain('models.small-backup.provider: unknown provider "nowhere"');
    expect(message).toContain('default_route: unknown route "missing-route"');
    expect(message).toContain('UNSET_PROVIDER_KEY is not set');
    expect(message).toContain('tenants.ops.tier: unknown tier "platinum"');
    expect(message).toContain('tenants.ops.route_limits: unknown route "nowhere"');
  });

  it('rejects invalid YAML, unknown sections and unknown fields in shared sections', () => {
    expect(() => parseGatewayConfig('a: [', 'x.yaml', {})).toThrow(/not valid YAML/);
    expect(() => parseGatewayConfig(exampleText.replace('default_route: support-chat', 'default_route: support-chat\nsurprise: 1'), 'x.yaml', {})).toThrow(
      /surprise/,
    );
    expect(() => parseGatewayConfig(exampleText.replace('  acme:\n    tier: startup', '  acme:\n    tier: startup\n    log_promtps: true'), 'x.yaml', {})).toThrow(
      /log_promtps/,
    );
  });

  it('a missing file is a ConfigError naming it', () => {
    expect(problemsOf(() => loadGatewayConfig('/nonexistent/gateway.yaml', {}))).toMatch(/\/nonexistent\/gateway.yaml: cannot read file/);
  });
});

describe('service views', () => {
  // The provider keys without defaults: only the executor may need them.
  const secretText = exampleText.replace('${OPENAI_API_KEY:-sim-key}', '${OPENAI_API_KEY}').replace('${ANTHROPIC_API_KEY:-sim-key}', '${ANTHROPIC_API_KEY}');

  it('each view holds only its sections; only the executor resolves and holds provider keys', () => {
    const env = { OPENAI_API_KEY: 'sk-live-openai-secret', ANTHROPIC_API_KEY: 'sk-live-anthropic-secret' };
    const router = parseSections(routerSectionsSchema, secretText, 'g.yaml', env);
    const quota = parseSections(quotaSectionsSchema, secretText, 'g.yaml', env);
    const auth = parseSections(authSectionsSchema, secretText, 'g.yaml', env);
    const edge = parseSections(edgeSectionsSchema, secretText, 'g.yaml', env);
    const executor = parseSections(executorSectionsSchema, secretText, 'g.yaml', env);
    const accountant = parseSections(accountantSectionsSchema, secretText, 'g.yaml', env);
    expect(accountant).toEqual({
      tenants: { acme: { tier: 'startup', limits: {} }, globex: { tier: 'enterprise', limits: { usd_per_day: 500 } }, ops: { tier: 'enterprise', limits: {} } },
      tiers: { startup: { limits: {} }, enterprise: { limits: {} } },
      alerts: { webhooks: [] },
    });
    expect(Object.keys(router).sort()).toEqual(['default_route', 'models', 'routes', 'tenants', 'tiers']);
    expect(Object.keys(quota).sort()).toEqual(['quota', 'tenants', 'tiers']);
    expect(Object.keys(auth).sort()).toEqual(['api_keys', 'auth', 'tenants']);
    expect(Object.keys(edge)).toEqual(['tenants', 'intents', 'usage_labels', 'templates', 'content_policies']);
    expect(Object.keys(executor)).toEqual(['providers']);
    for (const view of [router, quota, auth, edge, accountant]) expect(JSON.stringify(view)).not.toMatch(/sk-live/);
    expect(executor.providers['sim-openai']?.api_key).toBe('sk-live-openai-secret');
  });

  it('router, quota, auth, edge and the accountant start without the provider keys set', () => {
    for (const schema of [routerSectionsSchema, quotaSectionsSchema, authSectionsSchema, edgeSectionsSchema, accountantSectionsSchema]) {
      expect(() => parseSections(schema, secretText, 'g.yaml', {})).not.toThrow();
    }
    expect(problemsOf(() => parseSections(executorSectionsSchema, secretText, 'g.yaml', {}))).toMatch(/OPENAI_API_KEY is not set.*ANTHROPIC_API_KEY is not set/);
  });

  it('shared sections keep only the view\'s own fields', () => {
    const router = parseSections(routerSectionsSchema, exampleText, 'g.yaml', {});
    expect(router.tiers.startup).toEqual({ allowed_models: ['small-fast', 'small-backup', 'gemini-flash', 'flaky-primary', 'embed-small'] });
    expect(router.tenants.acme).toEqual({});
    const quota = parseSections(quotaSectionsSchema, exampleText, 'g.yaml', {});
    expect(quota.tiers.startup).toEqual({ limits: { requests_per_minute: 120, tokens_per_day: 500_000 } });
    expect(quota.tenants.globex).toEqual({ tier: 'enterprise', limits: { usd_per_day: 500 }, route_limits: {}, model_limits: {} });
    expect(quota.quota.on_store_down.budgets).toBe('fail_closed');
    const auth = parseSections(authSectionsSchema, exampleText, 'g.yaml', {});
    expect(auth.tenants).toEqual({ acme: { tier: 'startup' }, globex: { tier: 'enterprise' }, ops: { tier: 'enterprise' } });
    expect(auth.api_keys).toHaveLength(3);
    const edge = parseSections(edgeSectionsSchema, exampleText, 'g.yaml', {});
    expect(edge.tenants.acme).toEqual({ tier: 'startup', log_prompts: false, route_policies: {} });
  });

  it('a view ignores problems in sections it does not read', () => {
    const broken = exampleText.replace('kind: anthropic', 'kind: carrier-pigeon');
    expect(() => parseSections(routerSectionsSchema, broken, 'g.yaml', {})).not.toThrow();
    expect(problemsOf(() => parseSections(executorSectionsSchema, broken, 'g.yaml', {}))).toContain('providers.sim-anthropic.kind');
  });

  it('each view makes the cross-checks it can, naming every problem', () => {
    const routerBad = exampleText
      .replace('default_route: support-chat', 'default_route: gone')
      .replace('allowed_models: [small-fast, small-backup,', 'allowed_models: [tiny, small-backup,')
      .replace('fallback: [small-fast]\n      - name: default', 'fallback: [mystery]\n      - name: default');
    const r = problemsOf(() => parseSections(routerSectionsSchema, routerBad, 'r.yaml', {}));
    expect(r).toContain('default_route: unknown route "gone"');
    expect(r).toContain('tiers.startup.allowed_models: unknown model "tiny"');
    expect(r).toContain('routes.support-chat.rules.0: unknown model "mystery"');

    const quotaBad = exampleText.replace('  acme:\n    tier: startup', '  acme:\n    tier: gold');
    expect(problemsOf(() => parseSections(quotaSectionsSchema, quotaBad, 'q.yaml', {}))).toContain('tenants.acme.tier: unknown tier "gold"');

    const authBad = exampleText.replace('    tenant: acme\n', '    tenant: nobody\n').replace('id: demo-admin', 'id: demo-startup');
    const a = problemsOf(() => parseSections(authSectionsSchema, authBad, 'a.yaml', {}));
    expect(a).toContain('api_keys.0.tenant: unknown tenant "nobody"');
    expect(a).toContain('api_keys.2.id: duplicate key id "demo-startup"');
  });

  describe('rule conditions and weighted splits', () => {
    /** The example file with its fallback-demo rule replaced by `rule` (YAML at the rule's indent). */
    const withRule = (rule: string) =>
      exampleText.replace('      - name: flaky-first\n        model: flaky-primary\n        fallback: [small-fast]\n', rule);
    const routerProblems = (rule: string) => problemsOf(() => parseSections(routerSectionsSchema, withRule(rule), 'r.yaml', {}));
    const rules = (rule: string) => parseSections(routerSectionsSchema, withRule(rule), 'r.yaml', {}).routes['fallback-demo']?.rules;

    it('reads priority, json, prompt_tokens and split; a split arm\'s name and fallback stay unset when not given', () => {
      const got = rules(`      - name: canary
        when: { priority: [high, normal], json: true, prompt_tokens: { min: 10, max: 5000 } }
        model: small-fast
        split:
          - { model: small-backup, share: 0.2 }
          - { name: flash-5, model: gemini-flash, share: 0.05, fallback: [] }
`);
      expect(got?.[0]).toEqual({
        name: 'canary',
        when: { priority: ['high', 'normal'], json: true, prompt_tokens: { min: 10, max: 5000 } },
        model: 'small-fast',
        fallback: [],
        split: [{ model: 'small-backup', share: 0.2 }, { name: 'flash-5', model: 'gemini-flash', share: 0.05, fallback: [] }],
      });
    });

    it('a rule without split has none', () => {
      expect(rules('      - name: plain\n        model: small-fast\n')?.[0]?.split).toEqual([]);
    });

    it('names the rule of an unknown split model, in the arm and in its fallback', () => {
      const r = routerProblems(`      - name: canary
        model: small-fast
        split:
          - { model: gpt-9, share: 0.1 }
          - { model: small-backup, share: 0.1, fallback: [mystery] }
`);
      expect(r).toContain('routes.fallback-demo.rules.0.split.0: rule "canary": unknown model "gpt-9"');
      expect(r).toContain('routes.fallback-demo.rules.0.split.1: rule "canary": unknown model "mystery"');
    });

    it('names the rule whose shares sum to more than 1, and accepts exactly 1 despite floating point', () => {
      const r = routerProblems(`      - name: greedy
        model: small-fast
        split:
          - { model: small-backup, share: 0.6 }
          - { model: gemini-flash, share: 0.5 }
`);
      expect(r).toContain('routes.fallback-demo.rules.0.split: rule "greedy": split shares sum to 1.1, more than 1');
      const whole = `      - name: whole
        model: small-fast
        split:
          - { model: small-backup, share: 0.1 }
          - { model: gemini-flash, share: 0.2 }
          - { model: flaky-primary, share: 0.7 }
`;
      expect(rules(whole)?.[0]?.split).toHaveLength(3);
    });

    it('refuses two arms of one name (the routing record could not tell them apart)', () => {
      expect(routerProblems(`      - name: twice
        model: small-fast
        split:
          - { model: small-backup, share: 0.1 }
          - { model: small-backup, share: 0.1 }
`)).toContain('routes.fallback-demo.rules.0.split.1: rule "twice": two split arms are named "small-backup"');
    });

    it.each([
      ['a share of 0', '        split: [{ model: small-backup, share: 0 }]\n', 'split.0.share'],
      ['a share of 1', '        split: [{ model: small-backup, share: 1 }]\n', 'split.0.share'],
      ['an unknown priority', '        when: { priority: [urgent] }\n', 'when.priority.0'],
      ['a json that is no boolean', '        when: { json: yes }\n', 'when.json'],
      ['prompt_tokens with min over max', '        when: { prompt_tokens: { min: 10, max: 9 } }\n', 'when.prompt_tokens: min must not exceed max'],
      ['a negative prompt_tokens bound', '        when: { prompt_tokens: { min: -1 } }\n', 'when.prompt_tokens.min'],
    ])('refuses %s', (_name, field, problem) => {
      expect(routerProblems(`      - name: bad\n        model: small-fast\n${field}`)).toContain(`routes.fallback-demo.rules.0.${problem}`);
    });

    it('the whole-file check makes the same split checks', () => {
      const text = withRule('      - name: canary\n        model: small-fast\n        split: [{ model: gpt-9, share: 0.1 }]\n');
      expect(problemsOf(() => parseGatewayConfig(text, 'g.yaml', {}))).toContain('rule "canary": unknown model "gpt-9"');
    });
  });

  describe('intent classifiers', () => {
    it('reads a route\'s classifier with defaults, for the edge; rules match its intents', () => {
      const edge = parseSections(edgeSectionsSchema, exampleText, 'e.yaml', {});
      expect(edge.intents['support-triage']).toMatchObject({ embed_route: 'embeddings', tenant: 'ops', threshold: 0.5, max_chars: 2_000 });
      expect(edge.intents['support-triage']?.intents.billing?.keywords).toContain('refund');
      const routes = parseSections(routerSectionsSchema, exampleText, 'r.yaml', {}).routes;
      expect(routes['support-triage']?.rules[0]?.when.intent).toEqual(['account_security']);
    });

    it.each([
      ['a classifier of an unknown route', (t: string) => t.replace('intents:\n  support-triage:', 'intents:\n  support-triag:'), 'intents.support-triag: unknown route "support-triag"'],
      ['an unknown embed route', (t: string) => t.replace('embed_route: embeddings', 'embed_route: embedings'), 'intents.support-triage.embed_route: unknown route "embedings"'],
      ['a route that embeds through itself', (t: string) => t.replace('embed_route: embeddings', 'embed_route: support-triage'), 'a route cannot embed through itself'],
      ['an unknown paying tenant', (t: string) => t.replace('    tenant: ops\n    threshold', '    tenant: nobody\n    threshold'), 'intents.support-triage.tenant: unknown tenant "nobody"'],
      ['a rule naming an intent the classifier lacks', (t: string) => t.replace('intent: [billing]', 'intent: [biling]'), 'unknown intent "biling"'],
      ['a rule naming an intent on a route without a classifier', (t: string) => t.replace('      - name: flaky-first\n', '      - name: flaky-first\n        when: { intent: [billing] }\n'), 'route "fallback-demo" has no classifier under intents'],
      ['a threshold above 1', (t: string) => t.replace('threshold: 0.5', 'threshold: 1.5'), 'intents.support-triage.threshold'],
      ['an intent without examples', (t: string) => t.replace('examples: [The API returns a 500 error, Requests time out after the last deploy]', 'examples: []'), 'intents.support-triage.intents.technical.examples'],
    ])('refuses %s', (_name, change, problem) => {
      const text = change(exampleText);
      expect(text).not.toBe(exampleText);
      expect(problemsOf(() => parseGatewayConfig(text, 'g.yaml', {}))).toContain(problem);
    });
  });

  describe('prompt templates', () => {
    it('reads templates with their versions and defaults, for the edge', () => {
      const edge = parseSections(edgeSectionsSchema, exampleText, 'e.yaml', {});
      const t = edge.templates['support-answer'];
      expect(t).toMatchObject({ pinned: 'v1', rollout: [{ version: 'v2', share: 0.1 }] });
      expect(t?.versions.v2).toMatchObject({ variables: ['product', 'plan'], defaults: { route: 'support-chat', max_tokens: 400, stop: ['\n\nCustomer:'] } });
    });

    it.each([
      ['an unknown pinned version', (t: string) => t.replace('pinned: v1', 'pinned: v9'), 'templates.support-answer.pinned: unknown version "v9"'],
      ['an unknown rollout version', (t: string) => t.replace('{ version: v2, share: 0.1 }', '{ version: v3, share: 0.1 }'), 'templates.support-answer.rollout.0.version: unknown version "v3"'],
      ['rollout shares over 1', (t: string) => t.replace('[{ version: v2, share: 0.1 }]', '[{ version: v2, share: 0.6 }, { version: v1, share: 0.5 }]'), 'templates.support-answer.rollout: shares sum to 1.1, more than 1'],
      ['an undeclared placeholder', (t: string) => t.replace('variables: [product, plan]', 'variables: [product]'), 'templates.support-answer.versions.v2.system: {{plan}} is not a declared variable'],
      ['a default route that does not exist', (t: string) => t.replace('defaults: { route: support-chat, temperature: 0.2, max_tokens: 300 }', 'defaults: { route: support-chatt }'), 'templates.support-answer.versions.v1.defaults.route: unknown route "support-chatt"'],
      ['a default model that does not exist', (t: string) => t.replace('defaults: { route: support-chat, temperature: 0.2, max_tokens: 300 }', 'defaults: { model: gpt-9 }'), 'templates.support-answer.versions.v1.defaults.model: unknown model "gpt-9"'],
      ['a json_schema format without its schema', (t: string) => t.replace('temperature: 0.2, max_tokens: 300 }', 'response_format: { type: json_schema } }'), 'json_schema is given exactly when type is json_schema'],
    ])('refuses %s', (_name, change, problem) => {
      const text = change(exampleText);
      expect(text).not.toBe(exampleText);
      expect(problemsOf(() => parseGatewayConfig(text, 'g.yaml', {}))).toContain(problem);
    });
  });

  describe('content policies', () => {
    it('reads the policies with defaults, and each tenant\'s policy and per-route overrides, for the edge', () => {
      const edge = parseSections(edgeSectionsSchema, exampleText, 'e.yaml', {});
      expect(edge.content_policies['pii-guard']).toMatchObject({ apply_to: ['request'], block_status: 'permission_denied', deny: [{ name: 'internal_codename', action: 'block' }] });
      expect(edge.content_policies['pii-strict']?.detectors.card).toBe('block');
      expect(edge.tenants.globex).toMatchObject({ content_policy: 'pii-guard', route_policies: { 'support-triage': 'pii-strict' } });
      expect(edge.tenants.acme).toMatchObject({ route_policies: {} });
      expect(edge.tenants.acme?.content_policy).toBeUndefined();
    });

    it.each([
      ['an unknown tenant policy', (t: string) => t.replace('content_policy: pii-guard', 'content_policy: pii-gard'), 'tenants.globex.content_policy: unknown content policy "pii-gard"'],
      ['an unknown route policy', (t: string) => t.replace("{ support-triage: pii-strict }", '{ support-triage: strict }'), 'unknown content policy "strict"'],
      ['a route policy of an unknown route', (t: string) => t.replace("{ support-triage: pii-strict }", '{ support-triag: pii-strict }'), 'tenants.globex.route_policies.support-triag: unknown route "support-triag"'],
      ['an unknown detector', (t: string) => t.replace('{ email: redact,', '{ mail: redact,'), 'content_policies.pii-guard.detectors'],
      ['an unknown action', (t: string) => t.replace('{ email: redact,', '{ email: mask,'), 'content_policies.pii-guard.detectors.email'],
      ['a deny pattern that does not compile', (t: string) => t.replace("pattern: 'project\\s+bluebird'", "pattern: 'project(['"), 'not a valid regular expression'],
    ])('refuses %s', (_name, change, problem) => {
      const text = change(exampleText);
      expect(text).not.toBe(exampleText);
      expect(problemsOf(() => parseGatewayConfig(text, 'g.yaml', {}))).toContain(problem);
    });

    it('the edge\'s view checks the policy names it holds', () => {
      const text = exampleText.replace('content_policy: pii-guard', 'content_policy: nope');
      expect(problemsOf(() => parseSections(edgeSectionsSchema, text, 'e.yaml', {}))).toContain('unknown content policy "nope"');
    });
  });

  describe('demotion by measured health', () => {
    const withDemote = (demote: string) => exampleText.replace('    demote: { error_rate_above: 0.25, p95_ms_above: 8000, min_calls: 20 }\n', demote);
    const routerProblems = (text: string) => problemsOf(() => parseSections(routerSectionsSchema, text, 'r.yaml', {}));

    it('reads a route\'s demote thresholds, min_calls 20 by default; absent means none', () => {
      const routes = parseSections(routerSectionsSchema, exampleText, 'r.yaml', {}).routes;
      expect(routes['support-chat']?.demote).toEqual({ error_rate_above: 0.25, p95_ms_above: 8000, min_calls: 20 });
      expect(routes['fallback-demo']?.demote).toBeUndefined();
      const p95Only = parseSections(routerSectionsSchema, withDemote('    demote: { p95_ms_above: 5000 }\n'), 'r.yaml', {}).routes;
      expect(p95Only['support-chat']?.demote).toEqual({ p95_ms_above: 5000, min_calls: 20 });
    });

    it.each([
      ['no threshold', '{ min_calls: 5 }', 'routes.support-chat.demote: give error_rate_above, p95_ms_above or both'],
      ['an error rate of 1', '{ error_rate_above: 1 }', 'routes.support-chat.demote.error_rate_above'],
      ['a negative error rate', '{ error_rate_above: -0.1 }', 'routes.support-chat.demote.error_rate_above'],
      ['a p95 of 0', '{ p95_ms_above: 0 }', 'routes.support-chat.demote.p95_ms_above'],
      ['min_calls of 0', '{ error_rate_above: 0.5, min_calls: 0 }', 'routes.support-chat.demote.min_calls'],
      ['an unknown field', '{ error_rate_above: 0.5, erorr_rate: 1 }', 'erorr_rate'],
    ])('refuses %s', (_name, demote, problem) => {
      expect(routerProblems(withDemote(`    demote: ${demote}\n`))).toContain(problem);
    });

    it('refuses demotion on a route whose plans have a single model, in the router\'s view and the whole file', () => {
      const text = exampleText.replace('  fallback-demo:\n', '  fallback-demo:\n    demote: { error_rate_above: 0.5 }\n').replace('        fallback: [small-fast]\n  # Semantic routing', '  # Semantic routing');
      const problem = 'routes.fallback-demo.demote: no rule of the route has a fallback';
      expect(routerProblems(text)).toContain(problem);
      expect(problemsOf(() => parseGatewayConfig(text, 'g.yaml', {}))).toContain(problem);
      // A split arm is a second model of its plan's chain.
      const split = text.replace('        model: flaky-primary\n', '        model: flaky-primary\n        split: [{ model: small-fast, share: 0.5 }]\n');
      expect(parseSections(routerSectionsSchema, split, 'r.yaml', {}).routes['fallback-demo']?.demote).toEqual({ error_rate_above: 0.5, min_calls: 20 });
    });
  });

  it('strict on sections a service owns alone', () => {
    const text = exampleText.replace('    max_connections: 256', '    max_connections: 256\n    max_conections: 1');
    expect(problemsOf(() => parseSections(executorSectionsSchema, text, 'g.yaml', {}))).toContain('max_conections');
    const quotaText = exampleText.replace('  lease_ttl_ms: 120000', '  lease_ttl_ms: 120000\n  lease_ttl: 5');
    expect(problemsOf(() => parseSections(quotaSectionsSchema, quotaText, 'g.yaml', {}))).toContain('lease_ttl');
  });

  it('loadSections reads a file; the views are frozen', () => {
    const q = loadSections(quotaSectionsSchema, example.pathname, {});
    expect(Object.isFrozen(q.tenants.acme)).toBe(true);
  });
});

describe('parseEnv', () => {
  const schema = z.object({
    DRAIN_MS: envMs(0),
    PORT: envPort().optional(),
    NATS_URL: envString(),
    REDIS_URL: envUrl(['redis:', 'rediss:']).optional(),
    WORKERS: envInt({ min: 1, max: 64, default: 4 }),
    VERBOSE: envBool(false),
    MODE: envEnum(['a', 'b'] as const, 'a'),
  });

  it('types values and applies defaults; empty counts as unset', () => {
    const env = parseEnv(schema, { NATS_URL: 'nats://x:4222', PORT: '8080', DRAIN_MS: '', VERBOSE: 'yes', MODE: 'b' });
    expect(env).toEqual({ DRAIN_MS: 0, PORT: 8080, NATS_URL: 'nats://x:4222', WORKERS: 4, VERBOSE: true, MODE: 'b' });
  });

  it('names every bad variable and what it expected, never NaN', () => {
    const message = problemsOf(() =>
      parseEnv(schema, { DRAIN_MS: 'abc', PORT: '70000', REDIS_URL: 'http://x', WORKERS: '0', VERBOSE: 'maybe', MODE: 'c' }),
    );
    expect(message).toContain('invalid environment');
    expect(message).toContain('DRAIN_MS: expected a non-negative integer, got "abc"');
    expect(message).toContain('PORT: expected a port number (0-65535), got "70000"');
    expect(message).toContain('NATS_URL: is not set');
    expect(message).toContain('REDIS_URL: expected a redis:// or rediss:// URL, got "http://x"');
    // A URL's password is never quoted back.
    expect(() => parseEnv(schema, { NATS_URL: 'nats://x:4222', REDIS_URL: 'redis//quota:s3cret@r:6379' })).toThrow('got "redis//quota:***@r:6379"');
    expect(message).toContain('WORKERS: expected an integer from 1 to 64, got "0"');
    expect(message).toContain('VERBOSE: expected true or false, got "maybe"');
    expect(message).toContain('MODE: expected one of a, b, got "c"');
    expect(() => parseEnv(z.object({ X: envMs() }), { X: '1.5' })).toThrow('X: expected a non-negative integer, got "1.5"');
  });

  it('gatherConfig reports the file and the environment together', () => {
    const message = problemsOf(() =>
      gatherConfig({
        sections: () => parseSections(quotaSectionsSchema, 'tenants: { a: { tier: nope } }\ntiers: {}', 'q.yaml', {}),
        env: () => parseEnv(z.object({ DRAIN_MS: envMs() }), { DRAIN_MS: '-1' }),
      }),
    );
    expect(message).toContain('q.yaml and environment');
    expect(message).toContain('tenants.a.tier: unknown tier "nope"');
    expect(message).toContain('environment: DRAIN_MS: expected a non-negative integer, got "-1"');
    expect(gatherConfig({ a: () => 1, b: () => 'x' })).toEqual({ a: 1, b: 'x' });
  });
});

describe('model pricing', () => {
  const routerView = (models: string) =>
    parseSections(
      routerSectionsSchema,
      `default_route: r\nmodels:\n${models}\nroutes:\n  r: { rules: [{ name: all, model: m }] }\ntiers: {}\ntenants: {}\n`,
      'pricing.yaml',
      {},
    );

  it('a chat model without an output price is a config error naming the model, never a price of $0', () => {
    const message = problemsOf(() => routerView('  m: { provider: p, pricing: { input_per_million_usd: 1 } }'));
    expect(message).toContain('models.m.pricing: incomplete price: output_per_million_usd is required');
    expect(problemsOf(() => routerView('  m: { provider: p }'))).toContain('models.m.pricing');
  });

  it('an embeddings model needs only an input price; cache reads and writes cost the input price unless given', () => {
    const embed = routerView('  m: { provider: p, capabilities: [embeddings], pricing: { input_per_million_usd: 0.02 } }').models.m!;
    expect(embed.pricing).toEqual([{ input_per_million_usd: 0.02, output_per_million_usd: 0, cached_input_per_million_usd: 0.02, cache_write_input_per_million_usd: 0.02, effectiveFromMs: -Infinity }]);
    const chat = routerView('  m: { provider: p, pricing: { input_per_million_usd: 3, output_per_million_usd: 15, cached_input_per_million_usd: 0.3, cache_write_input_per_million_usd: 3.75 } }').models.m!;
    expect(chat.pricing[0]).toMatchObject({ cached_input_per_million_usd: 0.3, cache_write_input_per_million_usd: 3.75 });
  });

  it('reads prices with effective dates, oldest first; the first has none, every later one has one, in order', () => {
    const ok = routerView(
      '  m:\n    provider: p\n    pricing:\n      - { input_per_million_usd: 2, output_per_million_usd: 8 }\n      - { effective_from: "2026-07-01T00:00:00+02:00", input_per_million_usd: 1, output_per_million_usd: 4 }',
    ).models.m!;
    expect(ok.pricing.map((p) => [p.effectiveFromMs, p.input_per_million_usd])).toEqual([
      [-Infinity, 2],
      [Date.parse('2026-06-30T22:00:00Z'), 1],
    ]);
    const message = problemsOf(() =>
      routerView(
        '  m:\n    provider: p\n    pricing:\n' +
          '      - { effective_from: "2026-01-01T00:00:00Z", input_per_million_usd: 2, output_per_million_usd: 8 }\n' +
          '      - { input_per_million_usd: 1, output_per_million_usd: 4 }\n' +
          '      - { effective_from: "2025-01-01T00:00:00Z", input_per_million_usd: 1, output_per_million_usd: 4 }',
      ),
    );
    expect(message).toContain('models.m.pricing.0: the first price has no effective_from');
    expect(message).toContain('models.m.pricing.1: every price after the first needs effective_from');
    expect(message).toContain('models.m.pricing.2: effective_from 2025-01-01T00:00:00Z is not after the price before it');
    const badDate = '  m:\n    provider: p\n    pricing:\n      - { input_per_million_usd: 1, output_per_million_usd: 4 }\n      - { effective_from: "2025-06-01", input_per_million_usd: 1, output_per_million_usd: 4 }';
    expect(problemsOf(() => routerView(badDate))).toContain('models.m.pricing.1.effective_from: expected an RFC 3339 date-time');
  });
});
