import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { parseGatewayConfig, type GatewayConfig } from '@llmgw/config';
import type { Logger } from '@llmgw/logging';
import { Planner } from './planner.js';

export interface PolicyWatcherOptions {
  path: string;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** How often the file is polled (fs.watchFile survives editors that replace the file). */
  intervalMs?: number;
}

/**
 * Holds the current planner and swaps it atomically when the config file changes and parses.
 * A bad edit keeps the old policy and logs one error naming every problem.
 */
export class PolicyWatcher {
  private planner: Planner;
  private lastDigest = '';
  private watching = false;
  private reloading: Promise<void> = Promise.resolve();
  private readonly listener = (curr: Stats, prev: Stats) => {
    if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size && curr.ino === prev.ino) return;
    this.reloading = this.reloading.then(async () => {
      await this.reload();
    });
  };

  constructor(
    initial: GatewayConfig,
    private readonly opts: PolicyWatcherOptions,
  ) {
    this.planner = new Planner(initial);
  }

  get current(): Planner {
    return this.planner;
  }

  start(): void {
    if (this.watching) return;
    this.watching = true;
    watchFile(this.opts.path, { interval: this.opts.intervalMs ?? 500, persistent: false }, this.listener);
  }

  stop(): void {
    if (!this.watching) return;
    this.watching = false;
    unwatchFile(this.opts.path, this.listener);
  }

  /** Reads and applies the file now; resolves whether the policy was swapped. */
  async reload(): Promise<boolean> {
    let text: string;
    try {
      text = await readFile(this.opts.path, 'utf8');
    } catch (err) {
      this.opts.logger.error({ path: this.opts.path, err: err instanceof Error ? err.message : String(err) }, 'policy reload failed: cannot read config; keeping the previous policy');
      return false;
    }
    const digest = createHash('sha256').update(text).digest('hex');
    if (digest === this.lastDigest) return false;
    this.lastDigest = digest;
    try {
      const config = parseGatewayConfig(text, this.opts.path, this.opts.env);
      this.planner = new Planner(config);
      this.opts.logger.info({ path: this.opts.path, routes: Object.keys(config.routes).length }, 'policy reloaded');
      return true;
    } catch (err) {
      this.opts.logger.error(
        { path: this.opts.path },
        `policy reload failed, keeping the previous policy: ${err instanceof Error ? err.message : String(err)}`,
      );
      return false;
    }
  }
}
