import { envInt, executorSectionsSchema, loadSections, parseEnv, type ExecutorSections } from '@llmgw/config';
import { z } from 'zod';

/** 64 MiB of live records: some 200 000 unpublished events (the journal holds them in memory too). */
export const DEFAULT_OUTBOX_MAX_BYTES = 64 * 1024 * 1024;

const executorEnvSchema = z.object({
  /** Usage journal: write-ahead notes and events NATS did not take yet; on a persistent volume in production. */
  USAGE_OUTBOX_PATH: z.string().optional(),
  /** Live bytes the journal may hold; beyond, new requests are refused (UNAVAILABLE "usage outbox full"). */
  USAGE_OUTBOX_MAX_BYTES: envInt({ min: 1, default: DEFAULT_OUTBOX_MAX_BYTES }),
});

/** The executor's part of the config file (providers and their secrets: no other service sees them) and its environment. */
export interface ExecutorConfig {
  sections: ExecutorSections;
  outboxPath: string | undefined;
  outboxMaxBytes: number;
}

export function loadExecutorConfig(path: string, env: NodeJS.ProcessEnv): ExecutorConfig {
  const e = parseEnv(executorEnvSchema, env);
  return { sections: loadSections(executorSectionsSchema, path, env), outboxPath: e.USAGE_OUTBOX_PATH || undefined, outboxMaxBytes: e.USAGE_OUTBOX_MAX_BYTES };
}
