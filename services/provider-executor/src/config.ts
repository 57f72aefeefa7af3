import { executorSectionsSchema, loadSections, parseEnv, type ExecutorSections } from '@llmgw/config';
import { z } from 'zod';

const executorEnvSchema = z.object({
  /** File keeping usage events NATS did not take yet; on a persistent volume in production. */
  USAGE_OUTBOX_PATH: z.string().optional(),
});

/** The executor's part of the config file (providers and their secrets: no other service sees them) and its environment. */
export interface ExecutorConfig {
  sections: ExecutorSections;
  outboxPath: string | undefined;
}

export function loadExecutorConfig(path: string, env: NodeJS.ProcessEnv): ExecutorConfig {
  const e = parseEnv(executorEnvSchema, env);
  return { sections: loadSections(executorSectionsSchema, path, env), outboxPath: e.USAGE_OUTBOX_PATH || undefined };
}
