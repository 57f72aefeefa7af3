import type { GatewayConfig, Limits } from './schema.js';

/** Models a tenant may use: the tenant's own list, else its tier's; empty means every model. */
export function allowedModels(config: GatewayConfig, tenantId: string): ReadonlySet<string> | undefined {
  const tenant = config.tenants[tenantId];
  if (!tenant) return new Set();
  const list = tenant.allowed_models ?? config.tiers[tenant.tier]?.allowed_models ?? [];
  return list.length > 0 ? new Set(list) : undefined;
}

export function mayUseModel(config: GatewayConfig, tenantId: string, model: string): boolean {
  const allowed = allowedModels(config, tenantId);
  return allowed === undefined || allowed.has(model);
}

/** Tier defaults with the tenant's overrides on top. */
export function tenantLimits(config: GatewayConfig, tenantId: string): Limits {
  const tenant = config.tenants[tenantId];
  if (!tenant) return {};
  return { ...(config.tiers[tenant.tier]?.limits ?? {}), ...stripUndefined(tenant.limits) };
}

function stripUndefined(limits: Limits): Limits {
  return Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined)) as Limits;
}
