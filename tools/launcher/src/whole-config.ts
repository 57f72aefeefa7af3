import { ConfigError, loadGatewayConfig, type GatewayConfig } from '@llmgw/config';

export type WholeConfigCheck = { ok: true; config: GatewayConfig } | { ok: false; source: string; problems: string[] };

/**
 * The whole-file check: every section, strict, every cross-reference (model → provider, tenant →
 * tier, key → tenant, limits → routes and models), every `${ENV}` reference resolved. No service
 * holds the whole file; `npm start` and `npm run config:check` run this once.
 */
export function checkWholeConfig(path: string, env: NodeJS.ProcessEnv): WholeConfigCheck {
  try {
    return { ok: true, config: loadGatewayConfig(path, env) };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, source: err.source, problems: err.problems };
    throw err;
  }
}
