import { z } from 'zod';
import { limitsSchema, sectionFields, tenantFields, tierFields, type ApiKeyConfig, type IntentClassifierConfig, type RouteConfig, type TemplateConfig } from './schema.js';

/**
 * The config file composed from the field schemas of schema.ts: one view per service, each with
 * the cross-checks it can make on what it holds, and the full strict schema with every
 * cross-reference. A view is strict on the sections its service owns alone; on sections shared
 * between services (tiers, tenants) it keeps only its own fields and strips the others' (the
 * whole-file check, `npm run config:check` and `npm start`, catches unknown fields there).
 */

type Path = (string | number)[];
type Issue = (path: Path, message: string) => void;

function issuer(ctx: z.RefinementCtx): Issue {
  return (path, message) => ctx.addIssue({ code: 'custom', path, message });
}

const has = (record: object, key: string): boolean => Object.hasOwn(record, key);

/**
 * default_route and every rule's models exist, split arms' included; a rule's split shares sum to
 * at most 1 and its arms have distinct names; default_max_tokens fits max_tokens; a route that
 * demotes has some plan with a model to demote behind.
 */
function checkRoutes(cfg: { default_route: string; routes: Record<string, RouteConfig>; models: object }, issue: Issue): void {
  if (!has(cfg.routes, cfg.default_route)) issue(['default_route'], `unknown route "${cfg.default_route}"`);
  for (const [routeName, route] of Object.entries(cfg.routes)) {
    route.rules.forEach((rule, i) => {
      const path = ['routes', routeName, 'rules', i];
      for (const m of [rule.model, ...rule.fallback]) {
        if (!has(cfg.models, m)) issue(path, `unknown model "${m}"`);
      }
      const arms = new Set<string>();
      rule.split.forEach((arm, j) => {
        for (const m of [arm.model, ...(arm.fallback ?? [])]) {
          if (!has(cfg.models, m)) issue([...path, 'split', j], `rule "${rule.name}": unknown model "${m}"`);
        }
        const name = arm.name ?? arm.model;
        if (arms.has(name)) issue([...path, 'split', j], `rule "${rule.name}": two split arms are named "${name}" (give them distinct names)`);
        arms.add(name);
      });
      const total = rule.split.reduce((sum, arm) => sum + arm.share, 0);
      // A rounding margin: 0.1 + 0.2 + 0.7 is 1.0000000000000002 in floating point.
      if (total > 1 + 1e-9) issue([...path, 'split'], `rule "${rule.name}": split shares sum to ${+total.toFixed(6)}, more than 1`);
    });
    if (route.default_max_tokens > route.max_tokens) issue(['routes', routeName, 'default_max_tokens'], 'must not exceed max_tokens');
    // Demotion reorders a plan's models: with one model per chain there is nothing to reorder.
    const chains = route.rules.flatMap((r) => [[r.model, ...r.fallback], ...r.split.map((a) => [a.model, ...(a.fallback ?? [r.model, ...r.fallback])])]);
    if (route.demote && chains.every((c) => new Set(c).size < 2)) {
      issue(['routes', routeName, 'demote'], 'no rule of the route has a fallback: a demoted model would have nothing to go behind');
    }
  }
}

/**
 * A classifier belongs to a route and embeds through another, paid by a configured tenant; a
 * rule's `when.intent` names an intent of its route's classifier (so a typo cannot silently
 * never match).
 */
function checkIntents(cfg: { routes: Record<string, RouteConfig>; tenants: object; intents: Record<string, IntentClassifierConfig> }, issue: Issue): void {
  for (const [routeName, classifier] of Object.entries(cfg.intents)) {
    if (!has(cfg.routes, routeName)) issue(['intents', routeName], `unknown route "${routeName}"`);
    if (!has(cfg.routes, classifier.embed_route)) issue(['intents', routeName, 'embed_route'], `unknown route "${classifier.embed_route}"`);
    if (classifier.embed_route === routeName) issue(['intents', routeName, 'embed_route'], 'a route cannot embed through itself');
    if (!has(cfg.tenants, classifier.tenant)) issue(['intents', routeName, 'tenant'], `unknown tenant "${classifier.tenant}"`);
  }
  for (const [routeName, route] of Object.entries(cfg.routes)) {
    route.rules.forEach((rule, i) => {
      for (const intent of rule.when.intent ?? []) {
        const classifier = cfg.intents[routeName];
        if (!classifier) issue(['routes', routeName, 'rules', i, 'when', 'intent'], `route "${routeName}" has no classifier under intents`);
        else if (!has(classifier.intents, intent)) issue(['routes', routeName, 'rules', i, 'when', 'intent'], `unknown intent "${intent}" (intents.${routeName} has ${Object.keys(classifier.intents).join(', ')})`);
      }
    });
  }
}

/** The routes and models a template version defaults to exist. */
function checkTemplates(cfg: { routes: object; models: object; templates: Record<string, TemplateConfig> }, issue: Issue): void {
  for (const [name, t] of Object.entries(cfg.templates)) {
    for (const [version, v] of Object.entries(t.versions)) {
      const path = ['templates', name, 'versions', version, 'defaults'];
      if (v.defaults.route !== undefined && !has(cfg.routes, v.defaults.route)) issue([...path, 'route'], `unknown route "${v.defaults.route}"`);
      if (v.defaults.model !== undefined && !has(cfg.models, v.defaults.model)) issue([...path, 'model'], `unknown model "${v.defaults.model}"`);
    }
  }
}

/** A tenant's content policies exist; in the whole file also the routes it names. */
function checkContentPolicies(cfg: { content_policies: object; tenants: Record<string, { content_policy?: string | undefined; route_policies: Record<string, string> }>; routes?: object }, issue: Issue): void {
  for (const [name, tenant] of Object.entries(cfg.tenants)) {
    if (tenant.content_policy !== undefined && !has(cfg.content_policies, tenant.content_policy)) issue(['tenants', name, 'content_policy'], `unknown content policy "${tenant.content_policy}"`);
    for (const [route, policy] of Object.entries(tenant.route_policies)) {
      if (!has(cfg.content_policies, policy)) issue(['tenants', name, 'route_policies', route], `unknown content policy "${policy}"`);
      if (cfg.routes && !has(cfg.routes, route)) issue(['tenants', name, 'route_policies', route], `unknown route "${route}"`);
    }
  }
}

/** allowed_models of tiers and tenants name existing models. */
function checkModelAccess(
  cfg: { models: object; tiers: Record<string, { allowed_models?: string[] }>; tenants: Record<string, { allowed_models?: string[] }> },
  issue: Issue,
): void {
  const check = (path: Path, models: string[] | undefined) => {
    for (const m of models ?? []) if (!has(cfg.models, m)) issue(path, `unknown model "${m}"`);
  };
  for (const [name, tier] of Object.entries(cfg.tiers)) check(['tiers', name, 'allowed_models'], tier.allowed_models);
  for (const [name, tenant] of Object.entries(cfg.tenants)) check(['tenants', name, 'allowed_models'], tenant.allowed_models);
}

function checkTenantTiers(cfg: { tiers: object; tenants: Record<string, { tier: string }> }, issue: Issue): void {
  for (const [name, tenant] of Object.entries(cfg.tenants)) {
    if (!has(cfg.tiers, tenant.tier)) issue(['tenants', name, 'tier'], `unknown tier "${tenant.tier}"`);
  }
}

function checkApiKeys(cfg: { api_keys: ApiKeyConfig[]; tenants: object }, issue: Issue): void {
  const ids = new Set<string>();
  cfg.api_keys.forEach((k, i) => {
    if (!has(cfg.tenants, k.tenant)) issue(['api_keys', i, 'tenant'], `unknown tenant "${k.tenant}"`);
    if (ids.has(k.id)) issue(['api_keys', i, 'id'], `duplicate key id "${k.id}"`);
    ids.add(k.id);
  });
}

/** The router's: routes, rules, models (pricing, capabilities, limits) and model access. */
export const routerSectionsSchema = z
  .object({
    default_route: sectionFields.default_route,
    models: sectionFields.models,
    routes: sectionFields.routes,
    tiers: z.record(z.string(), z.object({ allowed_models: tierFields.allowed_models })),
    tenants: z.record(z.string(), z.object({ allowed_models: tenantFields.allowed_models })),
  })
  .superRefine((cfg, ctx) => {
    const issue = issuer(ctx);
    checkRoutes(cfg, issue);
    checkModelAccess(cfg, issue);
  });
export type RouterSections = z.infer<typeof routerSectionsSchema>;

/** The provider-executor's: providers and their secrets. No other view holds a provider key. */
export const executorSectionsSchema = z.object({ providers: sectionFields.providers });
export type ExecutorSections = z.infer<typeof executorSectionsSchema>;

/** Quota's: tiers' limits, tenants' tier and limits (tenant, per route, per model), the quota policy. */
export const quotaSectionsSchema = z
  .object({
    tiers: z.record(z.string(), z.object({ limits: tierFields.limits })),
    tenants: z.record(
      z.string(),
      z.object({ tier: tenantFields.tier, limits: tenantFields.limits, route_limits: tenantFields.route_limits, model_limits: tenantFields.model_limits }),
    ),
    quota: sectionFields.quota,
  })
  .superRefine((cfg, ctx) => checkTenantTiers(cfg, issuer(ctx)));
export type QuotaSections = z.infer<typeof quotaSectionsSchema>;

/** Auth's: bootstrap keys, each tenant's tier (auth issues the principal's tier), auth settings. */
export const authSectionsSchema = z
  .object({
    tenants: z.record(z.string(), z.object({ tier: tenantFields.tier })),
    api_keys: sectionFields.api_keys,
    auth: sectionFields.auth,
  })
  .superRefine((cfg, ctx) => checkApiKeys(cfg, issuer(ctx)));
export type AuthSections = z.infer<typeof authSectionsSchema>;

/**
 * The edge's: each tenant's prompt-logging and content policies (and tier, for the classifiers'
 * paying tenant), the intent classifiers, what usage is labelled with, the prompt templates, the
 * content policies.
 */
export const edgeSectionsSchema = z
  .object({
    tenants: z.record(
      z.string(),
      z.object({ tier: tenantFields.tier, log_prompts: tenantFields.log_prompts, content_policy: tenantFields.content_policy, route_policies: tenantFields.route_policies }),
    ),
    intents: sectionFields.intents,
    usage_labels: sectionFields.usage_labels,
    templates: sectionFields.templates,
    content_policies: sectionFields.content_policies,
  })
  .superRefine((cfg, ctx) => checkContentPolicies(cfg, issuer(ctx)));
export type EdgeSections = z.infer<typeof edgeSectionsSchema>;

/**
 * The usage-accountant's: the tenant ids, so that it refuses usage of a tenant nobody configured.
 * Only the keys: every tenant field is stripped, none of them is the accountant's business.
 */
/** The accountant's: the tenants (usage of any other is refused), their dollar budgets (the dashboard's burn), alerts. */
const dollarBudget = z.object({ usd_per_day: limitsSchema.shape.usd_per_day }).default({});
export const accountantSectionsSchema = z.object({
  tenants: z.record(z.string(), z.object({ tier: tenantFields.tier, limits: dollarBudget })),
  tiers: z.record(z.string(), z.object({ limits: dollarBudget })).default({}),
  alerts: sectionFields.alerts,
});
export type AccountantSections = z.infer<typeof accountantSectionsSchema>;

/**
 * The whole file, strict everywhere, with every cross-reference (model → provider, tenant →
 * tier, key → tenant, limits → routes and models). Only for the whole-file check: no service
 * holds it.
 */
export const gatewayConfigSchema = z.strictObject(sectionFields).superRefine((cfg, ctx) => {
  const issue = issuer(ctx);
  for (const [name, model] of Object.entries(cfg.models)) {
    if (!has(cfg.providers, model.provider)) issue(['models', name, 'provider'], `unknown provider "${model.provider}"`);
  }
  checkRoutes(cfg, issue);
  checkModelAccess(cfg, issue);
  checkTenantTiers(cfg, issue);
  for (const [name, tenant] of Object.entries(cfg.tenants)) {
    for (const m of Object.keys(tenant.model_limits)) {
      if (!has(cfg.models, m)) issue(['tenants', name, 'model_limits'], `unknown model "${m}"`);
    }
    for (const r of Object.keys(tenant.route_limits)) {
      if (!has(cfg.routes, r)) issue(['tenants', name, 'route_limits'], `unknown route "${r}"`);
    }
  }
  checkApiKeys(cfg, issue);
  checkIntents(cfg, issue);
  checkTemplates(cfg, issue);
  checkContentPolicies(cfg, issue);
});
export type GatewayConfig = z.infer<typeof gatewayConfigSchema>;
