/** UTC budget periods. A day budget resets at 00:00 UTC, a month budget on the 1st at 00:00 UTC. */
export type PeriodUnit = 'day' | 'month';

export interface Period {
  /** "2026-11-21" for a day, "2026-11" for a month. */
  id: string;
  startMs: number;
  endMs: number;
}

export function periodOf(unit: PeriodUnit, nowMs: number): Period {
  const d = new Date(nowMs);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const mm = String(m + 1).padStart(2, '0');
  if (unit === 'month') {
    return { id: `${y}-${mm}`, startMs: Date.UTC(y, m, 1), endMs: Date.UTC(y, m + 1, 1) };
  }
  const day = d.getUTCDate();
  return { id: `${y}-${mm}-${String(day).padStart(2, '0')}`, startMs: Date.UTC(y, m, day), endMs: Date.UTC(y, m, day + 1) };
}
