import { tenantTag, reservationKey } from './keys.js';
import type { ResolvedLimit } from './limits.js';
import { planOps, thresholdsToRaise, type LimitOp } from './plan.js';
import {
  budgetGraceMs,
  recordLifeMs,
  type BudgetAlert,
  type LimitUsage,
  type QuotaStore,
  type ReconcileInput,
  type ReconcileResult,
  type ReleaseOutcome,
  type ReserveDecision,
  type ReserveInput,
  type StoreOptions,
} from './store.js';

interface WindowEntry {
  at: number;
  id: string;
  amount: number;
}

/**
 * A sliding-window log with its running total and an index by request id, so that a check costs
 * O(entries that expired), not O(entries in the window): a 1,000,000/min limit must stay cheap.
 */
class WindowLog {
  private entries: WindowEntry[] = [];
  private head = 0;
  private readonly byId = new Map<string, WindowEntry>();
  total = 0;

  get size(): number {
    return this.entries.length - this.head;
  }

  /** Oldest first. */
  *live(): Iterable<WindowEntry> {
    for (let i = this.head; i < this.entries.length; i++) yield this.entries[i]!;
  }

  newest(): WindowEntry | undefined {
    return this.size > 0 ? this.entries[this.entries.length - 1] : undefined;
  }

  trim(cutoff: number): void {
    while (this.head < this.entries.length && this.entries[this.head]!.at <= cutoff) {
      const e = this.entries[this.head++]!;
      this.total -= e.amount;
      if (this.byId.get(e.id) === e) this.byId.delete(e.id);
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  insert(entry: WindowEntry): void {
    let i = this.entries.length;
    while (i > this.head && this.entries[i - 1]!.at > entry.at) i--;
    this.entries.splice(i, 0, entry);
    this.byId.set(entry.id, entry);
    this.total += entry.amount;
  }

  /** A removed entry stays as a zero until it leaves the window. */
  remove(id: string): void {
    this.setAmount(id, 0);
    this.byId.delete(id);
  }

  setAmount(id: string, amount: number): void {
    const e = this.byId.get(id);
    if (!e) return;
    this.total += amount - e.amount;
    e.amount = amount;
  }
}

/** As the Lua record: sc = the limit's scope ("tenant", "route:<r>", "model:<m>"). */
type RecordEntry =
  | { t: 'w'; k: string; id: string; a: number; u: LimitOp['measure']; sc: string }
  | { t: 'b'; k: string; a: number; u: LimitOp['measure']; n: string; l: number; ak: string; p: string; sc: string }
  | { t: 'c'; k: string; id: string; sc: string };

type Decision = Pick<ReserveDecision, 'allowed' | 'limit' | 'retryAfterMs' | 'limitValue' | 'remaining' | 'resetMs'>;

/** As the Lua record; settled records (X, R, U) and denials carry no entries. */
interface ReservationRecord {
  s: 'A' | 'D' | 'X' | 'R' | 'U';
  d?: Decision;
  e?: RecordEntry[];
  /** The model reserved for ('' when not given). */
  m?: string;
}

interface Expiring<T> {
  v: T;
  exp: number;
}

/**
 * The monolithic mode's store: the same plan and the same steps as the Redis Lua scripts, on
 * maps in this process, with TTLs on the injected clock. Single-threaded JS makes each call
 * atomic just as a Lua script is.
 */
export class MemoryQuotaStore implements QuotaStore {
  /** Sliding-window logs (sorted by admission time). */
  private readonly windows = new Map<string, WindowLog>();
  /** Budget counters and alert markers. */
  private readonly counters = new Map<string, Expiring<number>>();
  /** Concurrency leases: request id → lease expiry. */
  private readonly leases = new Map<string, Map<string, number>>();
  private readonly records = new Map<string, Expiring<ReservationRecord>>();
  private ops = 0;

  constructor(private readonly opts: StoreOptions) {}

  async reserve(input: ReserveInput): Promise<ReserveDecision> {
    const now = this.opts.now();
    this.maybeSweep(now);
    const recKey = reservationKey(input.tenantId, input.requestId);
    const existing = this.getRecord(recKey, now);
    if (existing) {
      const d = existing.d ?? { allowed: true, limit: '', retryAfterMs: 0, limitValue: 0, remaining: 0, resetMs: 0 };
      return { ...d, duplicate: true, degraded: false, alerts: [] };
    }
    const ops = planOps(input.tenantId, input.limits, { tokens: input.estimatedTokens, costMicros: input.estimatedCostMicros }, now, this.opts.leaseTtlMs);

    let deny: Decision | undefined;
    const used: number[] = [];
    for (const op of ops) {
      const need = Math.max(op.amount, 1);
      let cand: Decision | undefined;
      if (op.type === 'w') {
        const entries = this.trim(op.key1, now, op.param);
        const u = entries?.total ?? 0;
        used.push(u);
        if (u + need > op.limit.value) {
          let retry = op.param;
          if (need <= op.limit.value) {
            const toFree = u + need - op.limit.value;
            let freed = 0;
            for (const e of entries?.live() ?? []) {
              freed += e.amount;
              if (freed >= toFree) {
                retry = e.at + op.param - now;
                break;
              }
            }
          }
          const newest = entries?.newest();
          const reset = newest ? newest.at + op.param - now : 0;
          cand = denied(op, retry, Math.max(op.limit.value - u, 0), reset);
        }
      } else if (op.type === 'b') {
        const u = this.counter(op.key1, now) ?? 0;
        used.push(u);
        if (u + need > op.limit.value) cand = denied(op, op.param - now, Math.max(op.limit.value - u, 0), op.param - now);
      } else {
        const leases = this.liveLeases(op.key1, now);
        used.push(leases.size);
        if (leases.size + 1 > op.limit.value) {
          const wait = Math.min(...leases.values()) - now;
          cand = denied(op, Math.min(wait, 1000), 0, wait);
        }
      }
      if (cand && (deny === undefined || cand.retryAfterMs > deny.retryAfterMs)) deny = cand;
    }
    if (deny) {
      const ttl = Math.max(1, Math.min(deny.retryAfterMs, this.opts.reservationTtlMs));
      this.records.set(recKey, { v: { s: 'D', d: deny }, exp: now + ttl });
      return { ...deny, duplicate: false, degraded: false, alerts: [] };
    }

    const alerts: BudgetAlert[] = [];
    const entries: RecordEntry[] = [];
    let best: { ratio: number; d: Decision } | undefined;
    ops.forEach((op, i) => {
      let rem = 0;
      let reset = 0;
      if (op.type === 'w') {
        const log = this.windows.get(op.key1) ?? new WindowLog();
        log.insert({ at: now, id: input.requestId, amount: op.amount });
        this.windows.set(op.key1, log);
        entries.push({ t: 'w', k: op.key1, id: input.requestId, a: op.amount, u: op.measure, sc: op.limit.scope });
        rem = op.limit.value - log.total;
        reset = op.param;
      } else if (op.type === 'b') {
        const ttl = op.param - now + budgetGraceMs(this.opts);
        const v = this.incr(op.key1, op.amount, now, ttl);
        this.raise(op.key2, ttl, op.limit.name, v, op.limit.value, op.period, alerts, now);
        entries.push({ t: 'b', k: op.key1, a: op.amount, u: op.measure, n: op.limit.name, l: op.limit.value, ak: op.key2, p: op.period, sc: op.limit.scope });
        rem = op.limit.value - v;
        reset = op.param - now;
      } else {
        const leases = this.leases.get(op.key1) ?? new Map<string, number>();
        leases.set(input.requestId, now + op.param);
        this.leases.set(op.key1, leases);
        entries.push({ t: 'c', k: op.key1, id: input.requestId, sc: op.limit.scope });
        rem = op.limit.value - (used[i] ?? 0) - 1;
      }
      const ratio = rem / op.limit.value;
      if (best === undefined || ratio < best.ratio) {
        best = { ratio, d: { allowed: true, limit: op.limit.name, retryAfterMs: 0, limitValue: op.limit.value, remaining: Math.max(rem, 0), resetMs: reset } };
      }
    });
    const d: Decision = best?.d ?? { allowed: true, limit: '', retryAfterMs: 0, limitValue: 0, remaining: 0, resetMs: 0 };
    this.records.set(recKey, { v: { s: 'A', d, e: entries, m: input.model ?? '' }, exp: now + recordLifeMs(this.opts) });
    return { ...d, duplicate: false, degraded: false, alerts };
  }

  async release(tenantId: string, requestId: string): Promise<ReleaseOutcome> {
    const now = this.opts.now();
    const recKey = reservationKey(tenantId, requestId);
    const rec = this.getRecord(recKey, now);
    if (!rec) {
      // Tombstone: a reserve arriving after its release reserves nothing.
      this.records.set(recKey, { v: { s: 'X' }, exp: now + recordLifeMs(this.opts) });
      return 'unknown';
    }
    if (rec.s === 'X') return 'already_released';
    if (rec.s === 'R' || rec.s === 'U') return 'already_reconciled';
    if (rec.s === 'D') return 'denied';
    for (const e of rec.e ?? []) {
      if (e.t === 'w') {
        if (e.u !== 'none') this.windows.get(e.k)?.remove(e.id);
      } else if (e.t === 'b') {
        const c = this.counters.get(e.k);
        if (c && c.exp > now) c.v -= e.a;
      } else {
        this.leases.get(e.k)?.delete(e.id);
      }
    }
    rec.s = 'X';
    delete rec.e;
    return 'released';
  }

  async reconcile(input: ReconcileInput): Promise<ReconcileResult> {
    const now = this.opts.now();
    const recKey = reservationKey(input.tenantId, input.requestId);
    const rec = this.getRecord(recKey, now);
    const alerts: BudgetAlert[] = [];
    if (rec) {
      if (rec.s === 'R' || rec.s === 'U') return { outcome: 'duplicate', alerts };
      if (rec.s === 'A') {
        // Another model served: the reserved model's token and dollar reservations go back (0),
        // and the served model's token and dollar limits are charged the actual usage.
        const switched = !!input.servedModel && !!rec.m && rec.m !== input.servedModel;
        for (const e of rec.e ?? []) {
          const zero = switched && e.sc.startsWith('model:');
          const tokens = zero ? 0 : input.actualTokens;
          const cost = zero ? 0 : input.actualCostMicros;
          if (e.t === 'w') {
            if (e.u === 'tok') this.windows.get(e.k)?.setAmount(e.id, tokens);
          } else if (e.t === 'b') {
            const c = this.counters.get(e.k);
            if (c && c.exp > now) {
              c.v += (e.u === 'tok' ? tokens : cost) - e.a;
              this.raise(e.ak, c.exp - now, e.n, c.v, e.l, e.p, alerts, now);
            }
          } else {
            this.leases.get(e.k)?.delete(e.id);
          }
        }
        if (switched) this.applyActual(input, input.limits.filter((l) => l.scope.startsWith('model:')), now, alerts);
        rec.s = 'R';
        delete rec.e;
        return { outcome: 'reconciled', alerts };
      }
    }
    // Released (the estimate is already given back; the usage was spent all the same), unknown
    // or expired reservation (or a denied one): add the actual usage once.
    this.applyActual(input, input.limits, now, alerts);
    this.records.set(recKey, { v: { s: 'U' }, exp: now + recordLifeMs(this.opts) });
    return { outcome: rec?.s === 'X' ? 'after_release' : 'orphan_applied', alerts };
  }

  /** Adds actual usage to the token and dollar limits given (windows and budgets). */
  private applyActual(input: ReconcileInput, limits: ResolvedLimit[], now: number, alerts: BudgetAlert[]): void {
    const ops = planOps(input.tenantId, limits, { tokens: input.actualTokens, costMicros: input.actualCostMicros }, now, this.opts.leaseTtlMs);
    for (const op of ops) {
      if (op.type === 'w' && op.measure === 'tok') {
        const log = this.trim(op.key1, now, op.param) ?? new WindowLog();
        log.insert({ at: now, id: input.requestId, amount: input.actualTokens });
        this.windows.set(op.key1, log);
      } else if (op.type === 'b') {
        const ttl = op.param - now + budgetGraceMs(this.opts);
        const v = this.incr(op.key1, op.amount, now, ttl);
        this.raise(op.key2, ttl, op.limit.name, v, op.limit.value, op.period, alerts, now);
      }
    }
  }

  async status(tenantId: string, limits: ResolvedLimit[]): Promise<LimitUsage[]> {
    const now = this.opts.now();
    const ops = planOps(tenantId, limits, { tokens: 0, costMicros: 0 }, now, this.opts.leaseTtlMs);
    return ops.map((op) => {
      let used = 0;
      let reset = 0;
      if (op.type === 'w') {
        const log = this.trim(op.key1, now, op.param);
        used = log?.total ?? 0;
        const newest = log?.newest();
        reset = newest ? newest.at + op.param - now : 0;
      } else if (op.type === 'b') {
        used = this.counter(op.key1, now) ?? 0;
        reset = op.param - now;
      } else {
        const live = [...(this.leases.get(op.key1) ?? new Map<string, number>()).values()].filter((exp) => exp > now);
        used = live.length;
        reset = live.length > 0 ? Math.min(...live) - now : 0;
      }
      return { limit: op.limit.name, limitValue: op.limit.value, used, remaining: Math.max(op.limit.value - used, 0), resetMs: reset };
    });
  }

  async reset(tenantId: string): Promise<void> {
    const counterPrefix = `${tenantTag(tenantId)}:c:`;
    const alertPrefix = `${tenantTag(tenantId)}:a:`;
    for (const map of [this.windows, this.counters, this.leases] as Map<string, unknown>[]) {
      for (const k of [...map.keys()]) if (k.startsWith(counterPrefix) || k.startsWith(alertPrefix)) map.delete(k);
    }
  }

  private getRecord(key: string, now: number): ReservationRecord | undefined {
    const r = this.records.get(key);
    if (!r) return undefined;
    if (r.exp <= now) {
      this.records.delete(key);
      return undefined;
    }
    return r.v;
  }

  private counter(key: string, now: number): number | undefined {
    const c = this.counters.get(key);
    if (!c) return undefined;
    if (c.exp <= now) {
      this.counters.delete(key);
      return undefined;
    }
    return c.v;
  }

  private incr(key: string, by: number, now: number, ttl: number): number {
    const v = (this.counter(key, now) ?? 0) + by;
    this.counters.set(key, { v, exp: now + ttl });
    return v;
  }

  private raise(ak: string, ttl: number, name: string, used: number, limit: number, period: string, alerts: BudgetAlert[], now: number): void {
    const raised = this.counter(ak, now) ?? 0;
    const thresholds = thresholdsToRaise(raised, used, limit);
    if (thresholds.length === 0) return;
    this.counters.set(ak, { v: thresholds[thresholds.length - 1]!, exp: now + Math.max(ttl, 1) });
    for (const t of thresholds) alerts.push({ limit: name, thresholdPercent: t, limitValue: limit, used, period });
  }

  private trim(key: string, now: number, windowMs: number): WindowLog | undefined {
    const log = this.windows.get(key);
    if (!log) return undefined;
    log.trim(now - windowMs);
    if (log.size === 0) {
      this.windows.delete(key);
      return undefined;
    }
    return log;
  }

  private liveLeases(key: string, now: number): Map<string, number> {
    const leases = this.leases.get(key) ?? new Map<string, number>();
    for (const [id, exp] of leases) if (exp <= now) leases.delete(id);
    return leases;
  }

  /** Drops expired records and counters now and then, so memory stays bounded. */
  private maybeSweep(now: number): void {
    if (++this.ops % 10_000 !== 0) return;
    for (const [k, r] of this.records) if (r.exp <= now) this.records.delete(k);
    for (const [k, c] of this.counters) if (c.exp <= now) this.counters.delete(k);
    for (const [k, log] of this.windows) {
      const newest = log.newest();
      if (!newest || newest.at <= now - 60 * 60_000) this.windows.delete(k);
    }
  }
}


function denied(op: LimitOp, retryAfterMs: number, remaining: number, resetMs: number): Decision {
  return { allowed: false, limit: op.limit.name, retryAfterMs, limitValue: op.limit.value, remaining, resetMs };
}
