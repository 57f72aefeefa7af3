import { envMs, gatherConfig, parseEnv, parseSections, quotaSectionsSchema, readConfigFile, type QuotaSections } from '@llmgw/config';
import { z } from 'zod';

/** Quota's environment. */
export const quotaEnvSchema = z.object({
  /** Redis command timeout of quota's own connection: a down Redis costs milliseconds, not seconds. */
  QUOTA_REDIS_TIMEOUT_MS: envMs(100),
  /** How often the config file is checked for changes to tenants, tiers' limits and the quota policy. */
  QUOTA_CONFIG_POLL_MS: envMs().optional(),
  /** The router's knob, used when QUOTA_CONFIG_POLL_MS is not set: one poll interval for the mesh. */
  POLICY_POLL_MS: envMs(500),
});

/** Quota's part of the config file (tiers' limits, tenants' tiers and limits, quota policy) and its environment. */
export interface QuotaConfig {
  sections: QuotaSections;
  redisTimeoutMs: number;
  pollMs: number;
}

export function parseQuotaSections(text: string, source: string, env: NodeJS.ProcessEnv): QuotaSections {
  return parseSections(quotaSectionsSchema, text, source, env);
}

export function loadQuotaConfig(path: string, env: NodeJS.ProcessEnv): QuotaConfig {
  const { sections, vars } = gatherConfig({
    sections: () => parseQuotaSections(readConfigFile(path), path, env),
    vars: () => parseEnv(quotaEnvSchema, env),
  });
  return { sections, redisTimeoutMs: vars.QUOTA_REDIS_TIMEOUT_MS, pollMs: vars.QUOTA_CONFIG_POLL_MS ?? vars.POLICY_POLL_MS };
}
