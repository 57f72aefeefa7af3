import { envMs, gatherConfig, parseEnv, parseSections, readConfigFile, routerSectionsSchema, type RouterSections } from '@llmgw/config';
import { z } from 'zod';

const routerEnvSchema = z.object({
  /** How often the config file is checked for changes. */
  POLICY_POLL_MS: envMs(500),
});

/** The router's part of the config file (routes, rules, models, model access) and its environment. */
export interface RouterConfig {
  sections: RouterSections;
  policyPollMs: number;
}

export function parseRouterSections(text: string, source: string, env: NodeJS.ProcessEnv): RouterSections {
  return parseSections(routerSectionsSchema, text, source, env);
}

/** The file's and the environment's problems together, so that one start error names them all. */
export function loadRouterConfig(path: string, env: NodeJS.ProcessEnv): RouterConfig {
  const { sections, vars } = gatherConfig({
    sections: () => parseRouterSections(readConfigFile(path), path, env),
    vars: () => parseEnv(routerEnvSchema, env),
  });
  return { sections, policyPollMs: vars.POLICY_POLL_MS };
}
