import type { Limits, QuotaSections } from '@llmgw/config';

/** Every kind of limit a tenant, a tenant+route or a tenant+model can have. */
export const LIMIT_KINDS = [
  'requests_per_minute',
  'tokens_per_minute',
  'tokens_per_day',
  'usd_per_day',
  'usd_per_month',
  'concurrent_requests',
] as const;
export type LimitKind = (typeof LIMIT_KINDS)[number];

/** Limit classes, each with its own policy when the store is down (`quota.on_store_down`). */
export type LimitClass = 'rates' | 'budgets' | 'concurrency';

export function limitClass(kind: LimitKind): LimitClass {
  switch (kind) {
    case 'requests_per_minute':
    case 'tokens_per_minute':
      return 'rates';
    case 'concurrent_requests':
      return 'concurrency';
    default:
      return 'budgets';
  }
}

/** One limit that applies to a request. Dollar limits are already in integer micro-dollars. */
export interface ResolvedLimit {
  /** e.g. "tenant:requests_per_minute", "route:support-chat:tokens_per_day". */
  name: string;
  /** "tenant", "route:<route>" or "model:<model>". */
  scope: string;
  kind: LimitKind;
  value: number;
}

export const MICROS_PER_USD = 1_000_000;

export function usdToMicros(usd: number): number {
  return Math.round(usd * MICROS_PER_USD);
}

function fromLimits(scope: string, limits: Limits): ResolvedLimit[] {
  const out: ResolvedLimit[] = [];
  for (const kind of LIMIT_KINDS) {
    const raw = limits[kind];
    if (raw === undefined) continue;
    const value = kind === 'usd_per_day' || kind === 'usd_per_month' ? usdToMicros(raw) : raw;
    out.push({ name: `${scope}:${kind}`, scope, kind, value });
  }
  return out;
}

export function isKnownTenant(config: QuotaSections, tenantId: string): boolean {
  return tenantId !== '' && Object.hasOwn(config.tenants, tenantId);
}

/** Tier defaults with the tenant's overrides on top; {} for an unknown tenant. */
export function tenantLimits(config: QuotaSections, tenantId: string): Limits {
  if (!isKnownTenant(config, tenantId)) return {};
  const tenant = config.tenants[tenantId]!;
  const tier = Object.hasOwn(config.tiers, tenant.tier) ? config.tiers[tenant.tier] : undefined;
  return { ...(tier?.limits ?? {}), ...stripUndefined(tenant.limits) };
}

function stripUndefined(limits: Limits): Limits {
  return Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined)) as Limits;
}

/**
 * The limits that apply to one request: the tenant's (tier defaults with the tenant's
 * overrides), the tenant's limits for the route (the resolved route the router planned; empty
 * means no route limits) and the tenant's limits for the model. Undefined for an unknown tenant.
 */
export function resolveLimits(config: QuotaSections, tenantId: string, route: string, model: string): ResolvedLimit[] | undefined {
  if (!isKnownTenant(config, tenantId)) return undefined;
  const tenant = config.tenants[tenantId]!;
  const out = fromLimits('tenant', tenantLimits(config, tenantId));
  const routeLimits = route && Object.hasOwn(tenant.route_limits, route) ? tenant.route_limits[route] : undefined;
  if (routeLimits) out.push(...fromLimits(`route:${route}`, routeLimits));
  const modelLimits = model && Object.hasOwn(tenant.model_limits, model) ? tenant.model_limits[model] : undefined;
  if (modelLimits) out.push(...fromLimits(`model:${model}`, modelLimits));
  return out;
}

/** Every limit a tenant has (for GetQuotaStatus): tenant-wide, each route's, each model's. */
export function allTenantLimits(config: QuotaSections, tenantId: string): ResolvedLimit[] | undefined {
  if (!isKnownTenant(config, tenantId)) return undefined;
  const tenant = config.tenants[tenantId]!;
  const out = fromLimits('tenant', tenantLimits(config, tenantId));
  for (const [route, limits] of Object.entries(tenant.route_limits)) out.push(...fromLimits(`route:${route}`, limits));
  for (const [model, limits] of Object.entries(tenant.model_limits)) out.push(...fromLimits(`model:${model}`, limits));
  return out;
}
