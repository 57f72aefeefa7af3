import { accountantSectionsSchema, envMs, envString, gatherConfig, parseEnv, parseSections, readConfigFile, type AccountantSections } from '@llmgw/config';
import { z } from 'zod';

/** The accountant's environment beyond the runtime's and the bus's (busEnvSchema). */
export const accountantEnvSchema = z.object({
  /** How often the config file is checked for added or removed tenants (the mesh's one poll interval). */
  POLICY_POLL_MS: envMs(500),
  /** How often token growth is checked (alerts.token_growth). */
  ALERT_CHECK_MS: envMs(60_000),
  /** The usage dashboard's HTTP address (http://<addr>/dashboard); "off" serves none. */
  ACCOUNTANT_HTTP_ADDR: envString('127.0.0.1:8081'),
});

/**
 * The accountant's view of the config file: the tenant ids, so that usage of a tenant nobody
 * configured is refused (dead-lettered) instead of counted, and the alerts (token growth, webhooks).
 */
export interface UsageAccountantConfig {
  sections: AccountantSections;
  /** How often the file is re-read for tenants (default 500 ms). */
  pollMs?: number;
  /** How often token growth is checked (default 60 s). */
  alertCheckMs?: number;
  /** host:port of the usage dashboard; undefined: none. */
  httpAddr?: string;
}

export function parseAccountantSections(text: string, source: string, env: NodeJS.ProcessEnv): AccountantSections {
  return parseSections(accountantSectionsSchema, text, source, env);
}

export function loadUsageAccountantConfig(path: string, env: NodeJS.ProcessEnv): UsageAccountantConfig {
  const { sections, vars } = gatherConfig({
    sections: () => parseAccountantSections(readConfigFile(path), path, env),
    vars: () => parseEnv(accountantEnvSchema, env),
  });
  return { sections, pollMs: vars.POLICY_POLL_MS, alertCheckMs: vars.ALERT_CHECK_MS, httpAddr: vars.ACCOUNTANT_HTTP_ADDR === 'off' ? undefined : vars.ACCOUNTANT_HTTP_ADDR };
}
