import { masters, type RedisClient } from '@llmgw/redis';
import { reservationKey, tenantCounterPatterns } from './keys.js';
import type { ResolvedLimit } from './limits.js';
import { RECONCILE_LUA, RELEASE_LUA, RESERVE_LUA, STATUS_LUA } from './lua-scripts.js';
import { planOps, type LimitOp } from './plan.js';
import {
  budgetGraceMs,
  recordLifeMs,
  type BudgetAlert,
  type LimitUsage,
  type QuotaStore,
  type ReconcileInput,
  type ReconcileOutcome,
  type ReconcileResult,
  type ReleaseOutcome,
  type ReserveDecision,
  type ReserveInput,
  type StoreOptions,
} from './store.js';

type Arg = string | number;

/** The scripts, registered with defineCommand: ioredis runs EVALSHA and falls back to EVAL once. */
interface QuotaCommands {
  quotaReserve(numKeys: number, ...args: Arg[]): Promise<unknown>;
  quotaRelease(numKeys: number, ...args: Arg[]): Promise<unknown>;
  quotaReconcile(numKeys: number, ...args: Arg[]): Promise<unknown>;
  quotaStatus(numKeys: number, ...args: Arg[]): Promise<unknown>;
}

/** A Redis failure that is the store being unreachable or slow (not a script bug). */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';

  /**
   * False when the command never left this process (no connection, no offline queue), so it
   * cannot run later; true when it was sent and its answer is missing (timeout, connection lost).
   */
  constructor(
    message: string,
    opts: ErrorOptions & { mayHaveRun?: boolean } = {},
  ) {
    super(message, opts);
    this.mayHaveRun = opts.mayHaveRun ?? true;
  }

  readonly mayHaveRun: boolean;
}

/** ioredis' refusal of a command while disconnected with the offline queue off (a cluster client's too): nothing was sent. */
const NOT_SENT = /Stream isn't writeable|Cluster isn't ready/;

export interface RedisStoreOptions extends StoreOptions {
  /**
   * Use the Redis server's clock (TIME) inside the scripts for windows and leases, so every
   * replica agrees on one clock. False passes `now()` instead (tests step an injected clock).
   * Budget periods (UTC day/month keys) always come from `now()`.
   */
  useRedisTime?: boolean;
}

export class RedisQuotaStore implements QuotaStore {
  private readonly cmd: QuotaCommands;

  constructor(
    private readonly redis: RedisClient,
    private readonly opts: RedisStoreOptions,
  ) {
    redis.defineCommand('quotaReserve', { lua: RESERVE_LUA });
    redis.defineCommand('quotaRelease', { lua: RELEASE_LUA });
    redis.defineCommand('quotaReconcile', { lua: RECONCILE_LUA });
    redis.defineCommand('quotaStatus', { lua: STATUS_LUA });
    this.cmd = redis as unknown as QuotaCommands;
  }

  async reserve(input: ReserveInput): Promise<ReserveDecision> {
    const now = this.opts.now();
    const ops = planOps(input.tenantId, input.limits, { tokens: input.estimatedTokens, costMicros: input.estimatedCostMicros }, now, this.opts.leaseTtlMs);
    const keys = [reservationKey(input.tenantId, input.requestId), ...opKeys(ops)];
    const args: Arg[] = [this.scriptNow(now), input.requestId, this.opts.reservationTtlMs, ops.length, budgetGraceMs(this.opts), input.model ?? '', recordLifeMs(this.opts), ...opArgs(ops)];
    const reply = await this.run(() => this.cmd.quotaReserve(keys.length, ...keys, ...args));
    const r = asArray(reply);
    return {
      allowed: num(r[0]) === 1,
      limit: str(r[1]),
      retryAfterMs: Math.max(0, num(r[2])),
      limitValue: num(r[3]),
      remaining: num(r[4]),
      resetMs: Math.max(0, num(r[5])),
      duplicate: num(r[6]) === 1,
      degraded: false,
      alerts: parseAlerts(r, 7),
    };
  }

  async release(tenantId: string, requestId: string): Promise<ReleaseOutcome> {
    const reply = await this.run(() => this.cmd.quotaRelease(1, reservationKey(tenantId, requestId), this.scriptNow(this.opts.now()), recordLifeMs(this.opts)));
    return str(reply) as ReleaseOutcome;
  }

  async reconcile(input: ReconcileInput): Promise<ReconcileResult> {
    const now = this.opts.now();
    const ops = planOps(input.tenantId, input.limits, { tokens: input.actualTokens, costMicros: input.actualCostMicros }, now, this.opts.leaseTtlMs);
    const keys = [reservationKey(input.tenantId, input.requestId), ...opKeys(ops)];
    const args: Arg[] = [
      this.scriptNow(now),
      input.requestId,
      recordLifeMs(this.opts),
      ops.length,
      budgetGraceMs(this.opts),
      input.actualTokens,
      input.actualCostMicros,
      input.servedModel ?? '',
      ...opArgs(ops),
    ];
    const r = asArray(await this.run(() => this.cmd.quotaReconcile(keys.length, ...keys, ...args)));
    return { outcome: str(r[0]) as ReconcileOutcome, alerts: parseAlerts(r, 1) };
  }

  async status(tenantId: string, limits: ResolvedLimit[]): Promise<LimitUsage[]> {
    const now = this.opts.now();
    const ops = planOps(tenantId, limits, { tokens: 0, costMicros: 0 }, now, this.opts.leaseTtlMs);
    if (ops.length === 0) return [];
    const keys = opKeys(ops);
    const args: Arg[] = [this.scriptNow(now), ops.length, ...ops.flatMap((op) => [op.type, op.limit.value, op.param])];
    const r = asArray(await this.run(() => this.cmd.quotaStatus(keys.length, ...keys, ...args)));
    return ops.map((op, i) => {
      const used = num(r[2 * i]);
      return { limit: op.limit.name, limitValue: op.limit.value, used, remaining: Math.max(op.limit.value - used, 0), resetMs: Math.max(0, num(r[2 * i + 1])) };
    });
  }

  /**
   * Deletes the tenant's counters and alert markers (not reservation records, so a late usage
   * event is still deduplicated). SCAN reaches one server only, so it runs on every master of a
   * cluster; the keys found share the tenant's slot, so one UNLINK through the client takes them.
   */
  async reset(tenantId: string): Promise<void> {
    await this.run(async () => {
      for (const redis of masters(this.redis)) {
        for (const pattern of tenantCounterPatterns(tenantId)) {
          let cursor = '0';
          do {
            const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
            cursor = next;
            if (keys.length > 0) await this.redis.unlink(...keys);
          } while (cursor !== '0');
        }
      }
    });
  }

  private scriptNow(now: number): number {
    return this.opts.useRedisTime ? 0 : now;
  }

  /** Connection errors and timeouts become StoreUnavailableError; script errors stay as they are. */
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof Error && err.name === 'ReplyError' && !/LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN/.test(err.message)) throw err;
      const message = err instanceof Error ? err.message : String(err);
      throw new StoreUnavailableError(`quota store unavailable: ${message}`, { cause: err, mayHaveRun: !NOT_SENT.test(message) });
    }
  }
}

function opKeys(ops: LimitOp[]): string[] {
  return ops.flatMap((op) => [op.key1, op.key2]);
}

function opArgs(ops: LimitOp[]): Arg[] {
  return ops.flatMap((op) => [op.type, op.limit.name, op.limit.value, Math.round(op.amount), op.param, op.measure, op.period, op.limit.scope]);
}

function asArray(reply: unknown): unknown[] {
  if (!Array.isArray(reply)) throw new Error('unexpected reply from quota script');
  return reply;
}

function num(v: unknown): number {
  return typeof v === 'number' ? v : Number(v ?? 0);
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : v instanceof Buffer ? v.toString() : String(v ?? '');
}

function parseAlerts(r: unknown[], from: number): BudgetAlert[] {
  const out: BudgetAlert[] = [];
  for (let i = from; i + 4 < r.length; i += 5) {
    out.push({ limit: str(r[i]), thresholdPercent: num(r[i + 1]) === 100 ? 100 : 80, used: num(r[i + 2]), limitValue: num(r[i + 3]), period: str(r[i + 4]) });
  }
  return out;
}
