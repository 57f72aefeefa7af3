import { edgeSectionsSchema, envMs, loadSections, parseEnv, parseSections, type EdgeSections } from '@llmgw/config';
import { z } from 'zod';

const edgeEnvSchema = z.object({
  /** How long a router plan is reused; 0 disables the cache. */
  EDGE_PLAN_CACHE_MS: envMs(1_000),
  /** How often the config file is checked for changes. */
  POLICY_POLL_MS: envMs(500),
});

/** The edge's part of the config file (the tenants' prompt-log policy) and its environment. */
export interface EdgeConfig {
  sections: EdgeSections;
  planCacheMs: number;
  policyPollMs: number;
}

export function parseEdgeSections(text: string, source: string, env: NodeJS.ProcessEnv): EdgeSections {
  return parseSections(edgeSectionsSchema, text, source, env);
}

export function loadEdgeConfig(path: string, env: NodeJS.ProcessEnv): EdgeConfig {
  const e = parseEnv(edgeEnvSchema, env);
  return { sections: loadSections(edgeSectionsSchema, path, env), planCacheMs: e.EDGE_PLAN_CACHE_MS, policyPollMs: e.POLICY_POLL_MS };
}
