import { PoisonEventError, Subjects, type NatsEventBus } from '@llmgw/events';
import { COUNTER_NAMES, COUNTER_PROPS, DAY_MS, DIM_NAMES, dayStartMs, dimsOf, rfc3339, type CounterName, type UsageCell, type UsageDims, type UsageFact } from './buckets.js';
import { decodeFact, type TenantIds } from './usage-consumer.js';
import { MemoryUsageStore, type RedisUsageStore } from './usage-store.js';

/** The end of every cell query: all hours. */
const ALL_HOURS = Number.MAX_SAFE_INTEGER;

export interface ReplayResult {
  cells: UsageCell[];
  /** Days from this one on are complete in the stream (0: the stream still holds its first event). */
  fromMs: number;
  events: number;
  duplicates: number;
  /** Events the live path refuses too (dead letters), by reason. */
  refused: Record<string, number>;
}

/**
 * Rebuilds the aggregates from the USAGE stream with the live path's validation and counting
 * (decodeFact, MemoryUsageStore), deduplicating by event id over the whole stream. When the
 * stream has dropped its oldest events, the UTC day of its first event is partial: the result
 * covers the days after it (whole days, so that their rollups can be rebuilt too).
 */
export async function replayUsage(bus: NatsEventBus, tenants: TenantIds): Promise<ReplayResult> {
  const facts: UsageFact[] = [];
  const refused: Record<string, number> = {};
  const read = await bus.readAll(Subjects.usageRecorded, (data, info) => {
    try {
      facts.push(decodeFact(data, info.storedAtMs, tenants));
    } catch (err) {
      if (!(err instanceof PoisonEventError)) throw err;
      refused[err.reason] = (refused[err.reason] ?? 0) + 1;
    }
  });
  const store = new MemoryUsageStore({ dedupeTtlMs: Infinity });
  let duplicates = 0;
  for (const f of facts) if (!(await store.record(f))) duplicates++;
  const fromMs = read.complete || read.firstStoredAtMs === undefined ? 0 : dayStartMs(read.firstStoredAtMs) + DAY_MS;
  return { cells: await store.cells({ fromMs, toMs: ALL_HOURS }), fromMs, events: read.events, duplicates, refused };
}

export interface CellDiff extends UsageDims {
  tenantId: string;
  hour: string;
  counter: CounterName;
  live: number;
  replay: number;
}

const cellKey = (c: UsageCell) => JSON.stringify([c.tenantId, c.startMs, ...DIM_NAMES.map((d) => c[d])]);

/** Every counter that differs between the live and the replayed cells, sorted. */
export function diffCells(live: readonly UsageCell[], replay: readonly UsageCell[]): CellDiff[] {
  const byKey = new Map<string, { l?: UsageCell; r?: UsageCell }>();
  for (const c of live) byKey.set(cellKey(c), { ...byKey.get(cellKey(c)), l: c });
  for (const c of replay) byKey.set(cellKey(c), { ...byKey.get(cellKey(c)), r: c });
  const out: CellDiff[] = [];
  for (const { l, r } of byKey.values()) {
    const c = (l ?? r)!;
    for (const counter of COUNTER_NAMES) {
      const lv = l?.[COUNTER_PROPS[counter]] ?? 0;
      const rv = r?.[COUNTER_PROPS[counter]] ?? 0;
      if (lv !== rv) out.push({ tenantId: c.tenantId, hour: rfc3339(c.startMs), ...dimsOf(c), counter, live: lv, replay: rv });
    }
  }
  return out.sort((a, b) => JSON.stringify(Object.values(a)).localeCompare(JSON.stringify(Object.values(b))));
}

function table(diffs: readonly CellDiff[]): string {
  const header = ['tenant', 'hour', 'route', 'model', 'provider', 'key', 'intent', 'user', 'prompt_version', 'feature', 'counter', 'live', 'replay'];
  const rows = diffs.map((d) => [d.tenantId, d.hour, ...DIM_NAMES.map((n) => d[n]), d.counter, String(d.live), String(d.replay)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/**
 * `check`: prints the differences between Redis and the stream, 1 when there are any.
 * `write`: replaces Redis's buckets of the replayed hours by the replay's (run it with the
 * accountant stopped, or events it counts meanwhile are overwritten), 0.
 */
export async function runReplay(opts: { bus: NatsEventBus; store: RedisUsageStore; tenants: TenantIds; mode: 'check' | 'write'; out: (line: string) => void }): Promise<number> {
  const r = await replayUsage(opts.bus, opts.tenants);
  const refused = Object.entries(r.refused).map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
  opts.out(`replayed ${r.events} events (${r.duplicates} duplicates, refused: ${refused}); days from ${r.fromMs === 0 ? 'the first event' : rfc3339(r.fromMs)}`);
  if (opts.mode === 'write') {
    await opts.store.replaceCells(r.cells, r.fromMs);
    opts.out(`wrote ${r.cells.length} cells`);
    return 0;
  }
  const diffs = diffCells(await opts.store.cells({ fromMs: r.fromMs, toMs: ALL_HOURS }), r.cells);
  if (diffs.length === 0) {
    opts.out(`identical: ${r.cells.length} cells`);
    return 0;
  }
  opts.out(`${diffs.length} differences:\n${table(diffs)}`);
  return 1;
}
