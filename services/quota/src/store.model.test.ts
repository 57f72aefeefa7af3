import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryQuotaStore } from './memory-store.js';
import { MINUTE_MS } from './plan.js';
import { RedisQuotaStore, StoreUnavailableError } from './redis-store.js';
import { recordLifeMs, type QuotaStore, type ReconcileInput, type ReconcileOutcome, type ReleaseOutcome, type ReserveInput, type StoreOptions } from './store.js';
import { FakeClock, limit, redisHarness, type RedisHarness } from './test-support.js';

/**
 * Model-based test of the quota store: random sequences of reserve, commit (usage event),
 * release, clock steps and store faults, each checked against a small reference model of what
 * every counter must hold. The faults are those of a Redis that times out: a reserve or release
 * that ran but whose reply was lost, a reserve still queued in Redis that runs after its release
 * (QuotaManager releases timed-out reserves by id), a usage event whose ack was lost (redelivered).
 * "Top-up" (raising a reservation before a fallback) is not modelled: the store has none, the
 * edge reserves for the most expensive attempt instead.
 */

const TENANT = 'acme';
const LIMITS = [limit('requests_per_minute', 4), limit('tokens_per_minute', 300), limit('tokens_per_day', 800), limit('usd_per_day', 1_000), limit('concurrent_requests', 2)];
const [RPM, TPM, TPD, USD, CONC] = LIMITS.map((l) => l.name) as [string, string, string, string, string];
const OPTS = { leaseTtlMs: 45_000, reservationTtlMs: 60_000, lateEventHorizonMs: 60_000 };
const LIFE = recordLifeMs(OPTS);
/** 23:50 UTC: a run that steps the clock far enough crosses into the next day's budgets. */
const START = Date.UTC(2026, 10, 21, 23, 50, 0);

type Fault = 'none' | 'lost_reply' | 'still_queued';

/** Runs the next call as told: normally, then losing its reply, or not at all (yet). */
class FaultyStore implements QuotaStore {
  next: Fault = 'none';

  constructor(readonly inner: QuotaStore) {}

  private async call<T>(run: () => Promise<T>): Promise<T> {
    const fault = this.next;
    this.next = 'none';
    if (fault === 'none') return run();
    if (fault === 'lost_reply') await run();
    throw new StoreUnavailableError('command timed out');
  }

  reserve(input: ReserveInput) {
    return this.call(() => this.inner.reserve(input));
  }
  release(tenantId: string, requestId: string) {
    return this.call(() => this.inner.release(tenantId, requestId));
  }
  reconcile(input: ReconcileInput) {
    return this.call(() => this.inner.reconcile(input));
  }
  status(tenantId: string, limits: typeof LIMITS) {
    return this.inner.status(tenantId, limits);
  }
  reset(tenantId: string) {
    return this.inner.reset(tenantId);
  }
}

interface Entry {
  at: number;
  amount: number;
}
interface Reservation {
  tokens: number;
  cost: number;
  day: string;
  tpm: Entry;
}
/** A reservation record: A active, D denied, X released (or tombstone), R reconciled, U usage applied without one. */
interface Rec {
  s: 'A' | 'D' | 'X' | 'R' | 'U';
  exp: number;
  res?: Reservation;
}

const dayOf = (t: number) => new Date(t).toISOString().slice(0, 10);

/** What every counter must hold, and what the caller side (QuotaManager, the bus) still owes. */
class Model {
  now = START;
  rpm: Entry[] = [];
  tpm: Entry[] = [];
  budgets = new Map<string, { tokens: number; cost: number }>();
  leases = new Map<string, number>();
  recs = new Map<string, Rec>();
  ids: string[] = [];
  /** Request ids whose reserve or release timed out: to be released by id. */
  pendingReleases = new Set<string>();
  /** Reserves that timed out but are still queued in Redis. */
  queued: { id: string; tokens: number; cost: number }[] = [];
  seq = 0;

  live(id: string): Rec | undefined {
    const r = this.recs.get(id);
    // A denial's record lives until its retry-after; whether it is still there changes no counter.
    if (r && r.s !== 'D' && r.exp <= this.now) return undefined;
    return r;
  }

  budget(day = dayOf(this.now)) {
    let b = this.budgets.get(day);
    if (!b) this.budgets.set(day, (b = { tokens: 0, cost: 0 }));
    return b;
  }

  used(): Record<string, number> {
    const inWindow = (es: Entry[]) => es.filter((e) => e.at > this.now - MINUTE_MS).reduce((n, e) => n + e.amount, 0);
    const b = this.budgets.get(dayOf(this.now));
    return {
      [RPM]: inWindow(this.rpm),
      [TPM]: inWindow(this.tpm),
      [TPD]: b?.tokens ?? 0,
      [USD]: b?.cost ?? 0,
      [CONC]: [...this.leases.values()].filter((exp) => exp > this.now).length,
    };
  }

  reserve(id: string, tokens: number, cost: number): { allowed: boolean; duplicate: boolean } {
    if (this.live(id)) return { allowed: true, duplicate: true };
    const u = this.used();
    const allowed =
      u[RPM]! + 1 <= 4 && u[TPM]! + Math.max(tokens, 1) <= 300 && u[TPD]! + Math.max(tokens, 1) <= 800 && u[USD]! + Math.max(cost, 1) <= 1_000 && u[CONC]! + 1 <= 2;
    if (!allowed) {
      this.recs.set(id, { s: 'D', exp: Infinity });
      return { allowed, duplicate: false };
    }
    const tpm = { at: this.now, amount: tokens };
    this.rpm.push({ at: this.now, amount: 1 });
    this.tpm.push(tpm);
    const b = this.budget();
    b.tokens += tokens;
    b.cost += cost;
    this.leases.set(id, this.now + OPTS.leaseTtlMs);
    this.recs.set(id, { s: 'A', exp: this.now + LIFE, res: { tokens, cost, day: dayOf(this.now), tpm } });
    return { allowed, duplicate: false };
  }

  /** undefined: a denial's outcome depends on whether its short-lived record is still there. */
  release(id: string): ReleaseOutcome | undefined {
    const r = this.live(id);
    if (!r) {
      this.recs.set(id, { s: 'X', exp: this.now + LIFE });
      return 'unknown';
    }
    if (r.s === 'D') return undefined;
    if (r.s === 'X') return 'already_released';
    if (r.s === 'R' || r.s === 'U') return 'already_reconciled';
    const res = r.res!;
    res.tpm.amount = 0;
    const b = this.budget(res.day);
    b.tokens -= res.tokens;
    b.cost -= res.cost;
    this.leases.delete(id);
    r.s = 'X';
    return 'released';
  }

  commit(id: string, tokens: number, cost: number): ReconcileOutcome | undefined {
    const r = this.live(id);
    if (r && (r.s === 'R' || r.s === 'U')) return 'duplicate';
    if (r?.s === 'A') {
      const res = r.res!;
      res.tpm.amount = tokens;
      const b = this.budget(res.day);
      b.tokens += tokens - res.tokens;
      b.cost += cost - res.cost;
      this.leases.delete(id);
      r.s = 'R';
      return 'reconciled';
    }
    // Released, denied or unknown: the usage is charged now, once.
    this.tpm.push({ at: this.now, amount: tokens });
    const b = this.budget();
    b.tokens += tokens;
    b.cost += cost;
    this.recs.set(id, { s: 'U', exp: this.now + LIFE });
    if (r?.s === 'D') return undefined;
    return r?.s === 'X' ? 'after_release' : 'orphan_applied';
  }
}

interface Real {
  store: FaultyStore;
  clock: FakeClock;
}
type Cmd = fc.AsyncCommand<Model, Real>;

const used = async (r: Real) => Object.fromEntries((await r.store.status(TENANT, LIMITS)).map((s) => [s.limit, s.used]));
const reserveInput = (requestId: string, tokens: number, cost: number): ReserveInput => ({ requestId, tenantId: TENANT, limits: LIMITS, estimatedTokens: tokens, estimatedCostMicros: cost });
const pick = (m: Model, n: number) => m.ids[n % m.ids.length]!;

/** After every command the store's counters equal the model's. */
abstract class Checked implements Cmd {
  abstract check(m: Readonly<Model>): boolean;
  abstract apply(m: Model, r: Real): Promise<void>;
  abstract toString(): string;
  async run(m: Model, r: Real): Promise<void> {
    await this.apply(m, r);
    expect(await used(r)).toEqual(m.used());
  }
}

class Reserve extends Checked {
  constructor(readonly tokens: number, readonly cost: number, readonly fault: Fault) {
    super();
  }
  check = () => true;
  async apply(m: Model, r: Real) {
    const id = `q${++m.seq}`;
    m.ids.push(id);
    r.store.next = this.fault;
    const reply = r.store.reserve(reserveInput(id, this.tokens, this.cost));
    if (this.fault !== 'none') {
      await expect(reply).rejects.toBeInstanceOf(StoreUnavailableError);
      m.pendingReleases.add(id); // what QuotaManager does with a timed-out reserve
      if (this.fault === 'lost_reply') m.reserve(id, this.tokens, this.cost);
      else m.queued.push({ id, tokens: this.tokens, cost: this.cost });
      return;
    }
    const d = await reply;
    expect({ allowed: d.allowed, duplicate: d.duplicate }).toEqual(m.reserve(id, this.tokens, this.cost));
    // Admission never takes a counter past its limit.
    if (d.allowed) for (const l of await r.store.status(TENANT, LIMITS)) expect(l.used).toBeLessThanOrEqual(l.limitValue);
  }
  toString = () => `reserve(${this.tokens}, ${this.cost}, ${this.fault})`;
}

class DuplicateReserve extends Checked {
  constructor(readonly n: number) {
    super();
  }
  check = (m: Readonly<Model>) => m.ids.some((id) => m.live(id) && m.live(id)!.s !== 'D');
  async apply(m: Model, r: Real) {
    const candidates = m.ids.filter((id) => m.live(id) && m.live(id)!.s !== 'D');
    const id = candidates[this.n % candidates.length]!;
    const d = await r.store.reserve(reserveInput(id, 1, 1));
    expect({ allowed: d.allowed, duplicate: d.duplicate }).toEqual(m.reserve(id, 1, 1));
  }
  toString = () => `duplicateReserve(#${this.n})`;
}

/** A usage event; with lostAck the store applied it but the ack was lost, so the bus redelivers it. */
class Commit extends Checked {
  constructor(readonly n: number, readonly tokens: number, readonly cost: number, readonly lostAck: boolean) {
    super();
  }
  check = (m: Readonly<Model>) => m.ids.length > 0;
  async apply(m: Model, r: Real) {
    const id = pick(m, this.n);
    const input: ReconcileInput = { requestId: id, tenantId: TENANT, actualTokens: this.tokens, actualCostMicros: this.cost, limits: LIMITS };
    const expected = m.commit(id, this.tokens, this.cost);
    if (this.lostAck) {
      r.store.next = 'lost_reply';
      await expect(r.store.reconcile(input)).rejects.toBeInstanceOf(StoreUnavailableError);
      expect((await r.store.reconcile(input)).outcome).toBe('duplicate');
      return;
    }
    const { outcome } = await r.store.reconcile(input);
    if (expected) expect(outcome).toBe(expected);
  }
  toString = () => `commit(#${this.n}, ${this.tokens}, ${this.cost}${this.lostAck ? ', ack lost' : ''})`;
}

/** The edge's release; a lost reply leaves it to QuotaManager's release by id. */
class Release extends Checked {
  constructor(readonly n: number, readonly lostReply: boolean) {
    super();
  }
  check = (m: Readonly<Model>) => m.ids.length > 0;
  async apply(m: Model, r: Real) {
    const id = pick(m, this.n);
    const expected = m.release(id);
    if (this.lostReply) {
      r.store.next = 'lost_reply';
      await expect(r.store.release(TENANT, id)).rejects.toBeInstanceOf(StoreUnavailableError);
      m.pendingReleases.add(id);
      return;
    }
    const outcome = await r.store.release(TENANT, id);
    if (expected) expect(outcome).toBe(expected);
  }
  toString = () => `release(#${this.n}${this.lostReply ? ', reply lost' : ''})`;
}

/** Redis answers again: QuotaManager's pending releases by request id go through. */
class RunPendingReleases extends Checked {
  check = (m: Readonly<Model>) => m.pendingReleases.size > 0;
  async apply(m: Model, r: Real) {
    for (const id of m.pendingReleases) {
      const expected = m.release(id);
      const outcome = await r.store.release(TENANT, id);
      if (expected) expect(outcome).toBe(expected);
    }
    m.pendingReleases.clear();
  }
  toString = () => 'runPendingReleases';
}

/** A reserve that timed out at the client runs in Redis now (the pause ended), maybe after its release. */
class RunQueuedReserve extends Checked {
  check = (m: Readonly<Model>) => m.queued.length > 0;
  async apply(m: Model, r: Real) {
    const q = m.queued.shift()!;
    const d = await r.store.inner.reserve(reserveInput(q.id, q.tokens, q.cost));
    expect({ allowed: d.allowed, duplicate: d.duplicate }).toEqual(m.reserve(q.id, q.tokens, q.cost));
  }
  toString = () => 'runQueuedReserve';
}

class Advance extends Checked {
  constructor(readonly ms: number) {
    super();
  }
  check = () => true;
  async apply(m: Model, r: Real) {
    m.now += this.ms;
    r.clock.t = m.now;
  }
  toString = () => `advance(${this.ms})`;
}

const tokens = fc.nat({ max: 160 });
const cost = fc.nat({ max: 420 });
const commands = fc.commands(
  [
    fc.tuple(tokens, cost, fc.constantFrom<Fault>('none', 'none', 'none', 'lost_reply', 'still_queued')).map(([t, c, f]) => new Reserve(t, c, f)),
    fc.nat().map((n) => new DuplicateReserve(n)),
    fc.tuple(fc.nat(), fc.nat({ max: 200 }), fc.nat({ max: 500 }), fc.boolean()).map(([n, t, c, lost]) => new Commit(n, t, c, lost)),
    fc.tuple(fc.nat(), fc.boolean()).map(([n, lost]) => new Release(n, lost)),
    fc.constant(new RunPendingReleases()),
    fc.constant(new RunQueuedReserve()),
    // Around the minute window, the lease TTL, the reservation TTL and the record life; 10 min crosses midnight.
    fc.constantFrom(1, 1_000, 30_000, OPTS.leaseTtlMs, MINUTE_MS - 1, MINUTE_MS, LIFE - 1, LIFE, 600_000).map((ms) => new Advance(ms)),
  ],
  { maxCommands: 60, size: 'medium' }, // ~30 commands a run (the default size keeps runs to ~5)
);

async function check(makeStore: (opts: StoreOptions, clock: FakeClock) => Promise<QuotaStore>, numRuns: number): Promise<void> {
  await fc.assert(
    fc.asyncProperty(commands, async (cmds) => {
      const clock = new FakeClock();
      clock.t = START;
      const store = new FaultyStore(await makeStore({ ...OPTS, now: clock.now }, clock));
      await fc.asyncModelRun(() => ({ model: new Model(), real: { store, clock } }), cmds);
    }),
    { numRuns },
  );
}

describe('QuotaStore against a reference model', () => {
  let h: RedisHarness;

  beforeAll(async () => {
    h = await redisHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  it('memory store: 1,000 runs', async () => {
    await check(async (opts) => new MemoryQuotaStore(opts), 1_000);
  });

  it('redis store (real redis-server, injected clock): 150 runs', async () => {
    const redis = await h.client();
    let now = () => START;
    // One store (its scripts defined once); each run's clock is swapped in.
    const store = new RedisQuotaStore(redis, { ...OPTS, now: () => now(), useRedisTime: false });
    await check(async (opts) => {
      await h.clear();
      now = opts.now;
      return store;
    }, 150);
  });
});
