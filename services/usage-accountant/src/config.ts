/**
 * The accountant needs no section of the config file: usage events carry tenant, route, model and
 * cost, and callers are checked through auth. It does not read the file at all (so it resolves
 * none of its `${ENV}` references); its environment is the runtime's (REDIS_URL, NATS_URL, ...).
 */
export type UsageAccountantConfig = Record<never, never>;

export function loadUsageAccountantConfig(_path: string, _env: NodeJS.ProcessEnv): UsageAccountantConfig {
  return {};
}
