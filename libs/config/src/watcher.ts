import { createHash } from 'node:crypto';
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** The two logger methods a watcher uses (a pino Logger fits). */
export interface WatcherLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ConfigWatcherOptions<T> {
  path: string;
  /** Builds the value from the file's text; throws (a ConfigError, normally) when it is not usable. */
  parse: (text: string, source: string) => T;
  logger: WatcherLogger;
  /** How often the file is polled (default 500 ms). fs.watchFile survives editors that replace the file. */
  intervalMs?: number;
  /** Called after each swap with the new value. */
  onChange?: (next: T) => void;
}

/**
 * Holds a value built from a config file and swaps it atomically when the file changes and
 * parses. A bad edit keeps the previous value and logs one error line naming every problem; the
 * same text is not parsed twice (sha256 of the contents).
 */
export class ConfigWatcher<T> {
  private value: T;
  private lastDigest = '';
  private watching = false;
  private reloading: Promise<unknown> = Promise.resolve();
  private readonly listener = (curr: Stats, prev: Stats) => {
    if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size && curr.ino === prev.ino) return;
    void this.reload();
  };

  constructor(
    initial: T,
    private readonly opts: ConfigWatcherOptions<T>,
  ) {
    this.value = initial;
  }

  get current(): T {
    return this.value;
  }

  /** Starts polling the file. */
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

  /** Reads and applies the file now (after any reload in progress); resolves whether the value was swapped. */
  reload(): Promise<boolean> {
    const next = this.reloading.then(() => this.apply());
    this.reloading = next.catch(() => undefined);
    return next;
  }

  private async apply(): Promise<boolean> {
    const { path, logger } = this.opts;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      logger.error({ path, err: err instanceof Error ? err.message : String(err) }, 'config reload failed: cannot read the file; keeping the previous config');
      return false;
    }
    const d = digest(text);
    if (d === this.lastDigest) return false;
    this.lastDigest = d;
    let next: T;
    try {
      next = this.opts.parse(text, path);
    } catch (err) {
      logger.error({ path }, `config reload failed, keeping the previous config: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
    this.value = next;
    logger.info({ path }, 'config reloaded');
    try {
      this.opts.onChange?.(next);
    } catch (err) {
      logger.error({ path }, `config reloaded, but applying it failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    return true;
  }
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
