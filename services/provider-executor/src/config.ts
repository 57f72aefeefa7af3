import { envInt, executorSectionsSchema, loadSections, parseEnv, type ExecutorSections } from '@llmgw/config';
import { z } from 'zod';

/** 64 MiB of live records: some 200 000 unpublished events (the journal holds them in memory too). */
export const DEFAULT_OUTBOX_MAX_BYTES = 64 * 1024 * 1024;
export const DEFAULT_OUTBOX_SYNC_MS = 0;
export const DEFAULT_STATS_INTERVAL_MS = 5_000;

const executorEnvSchema = z.object({
  /** Usage journal: write-ahead notes and events NATS did not take yet; on a persistent volume in production. */
  USAGE_OUTBOX_PATH: z.string().optional(),
  /** Live bytes the journal may hold; beyond, new requests are refused (UNAVAILABLE "usage outbox full"). */
  USAGE_OUTBOX_MAX_BYTES: envInt({ min: 1, default: DEFAULT_OUTBOX_MAX_BYTES }),
  /**
   * 0: every write-ahead note is fsynced before its provider call. N: a note is written before
   * the call (no crash of the executor can undo it) and fsynced within N ms (a host crash may
   * lose the notes of the last N ms).
   */
  USAGE_OUTBOX_SYNC_MS: envInt({ min: 0, max: 1_000, default: DEFAULT_OUTBOX_SYNC_MS }),
  /** How often this replica broadcasts its per-model calls, errors and p95 (BackendStatsReport); 0: never. */
  EXECUTOR_STATS_INTERVAL_MS: envInt({ min: 0, max: 600_000, default: DEFAULT_STATS_INTERVAL_MS }),
});

/** The executor's part of the config file (providers and their secrets: no other service sees them) and its environment. */
export interface ExecutorConfig {
  sections: ExecutorSections;
  outboxPath: string | undefined;
  outboxMaxBytes: number;
  outboxSyncMs: number;
  /** 0: no backend stats broadcasts. */
  statsIntervalMs: number;
}

export function loadExecutorConfig(path: string, env: NodeJS.ProcessEnv): ExecutorConfig {
  const e = parseEnv(executorEnvSchema, env);
  return {
    sections: loadSections(executorSectionsSchema, path, env),
    outboxPath: e.USAGE_OUTBOX_PATH || undefined,
    outboxMaxBytes: e.USAGE_OUTBOX_MAX_BYTES,
    outboxSyncMs: e.USAGE_OUTBOX_SYNC_MS,
    statsIntervalMs: e.EXECUTOR_STATS_INTERVAL_MS,
  };
}
