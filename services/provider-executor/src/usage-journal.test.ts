import { open as openFile } from 'node:fs/promises';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, silentLogger } from '@llmgw/logging';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JournalFullError, UsageJournal, type JournalEntry } from './usage-journal.js';

const dirs: string[] = [];
const journals: UsageJournal[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const j of journals.splice(0)) await j.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'usage-journal-'));
  dirs.push(dir);
  return join(dir, 'sub', 'usage.journal');
}

/** A logger whose lines the test can read. */
function recordingLogger() {
  const lines: { level: string; msg: string; [k: string]: unknown }[] = [];
  const logger = createLogger({ service: 'test', destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
  return { logger, lines };
}

async function journal(path: string | undefined, opts: { maxLiveBytes?: number; compactMinBytes?: number; syncDelayMs?: number; logger?: ReturnType<typeof silentLogger> } = {}): Promise<UsageJournal> {
  const j = await UsageJournal.open({ path, maxLiveBytes: opts.maxLiveBytes ?? 1 << 20, logger: opts.logger ?? silentLogger(), compactMinBytes: opts.compactMinBytes, syncDelayMs: opts.syncDelayMs });
  journals.push(j);
  return j;
}

const payload = (s: string) => new Uint8Array(Buffer.from(s));
const entries = (j: UsageJournal) => Object.fromEntries(j.entries().map(([id, e]) => [id, { kind: e.kind, payload: Buffer.from(e.payload).toString() }]));
/** Closes a journal as a crash would leave it: what was acknowledged is on disk (fsynced), nothing else runs. */
async function reopen(j: UsageJournal, path: string, opts: Parameters<typeof journal>[1] = {}): Promise<UsageJournal> {
  await j.close();
  return journal(path, opts);
}

/** FileHandle's prototype, whose datasync every journal's fsync goes through. */
async function fileHandlePrototype(path: string): Promise<{ datasync: () => Promise<void> }> {
  const probe = await openFile(join(path, '..', 'probe'), 'w');
  await probe.close();
  return Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
}

function spyOnDatasync(path: string) {
  return fileHandlePrototype(path).then((proto) => vi.spyOn(proto, 'datasync'));
}

describe('UsageJournal', () => {
  it('keeps notes and finals across a restart; a published marker removes the entry', async () => {
    const path = tempPath();
    const j = await journal(path);
    await j.append('note', 'r1', payload('r1 note'));
    await j.append('note', 'r2', payload('r2 note'));
    await j.append('final', 'r2', payload('r2 final'));
    await j.append('final', 'r3', payload('r3 final'));
    j.published('r3');
    expect(j.records).toBe(2);
    const again = await reopen(j, path);
    expect(entries(again)).toEqual({ r1: { kind: 'note', payload: 'r1 note' }, r2: { kind: 'final', payload: 'r2 final' } });
    expect(again.bytes).toBe(j.bytes);
    expect(again.bytes).toBeGreaterThan(0);
  });

  it('resolves an append only once it is on disk (a second reader sees it before close)', async () => {
    const path = tempPath();
    const j = await journal(path);
    await j.append('note', 'seen', payload('on disk'));
    const reader = await journal(path);
    expect(entries(reader)).toEqual({ seen: { kind: 'note', payload: 'on disk' } });
  });

  it('puts the appends of one event-loop turn into one fsync (group commit)', async () => {
    const path = tempPath();
    const j = await journal(path);
    const datasync = await spyOnDatasync(path);
    await Promise.all(Array.from({ length: 100 }, (_, i) => j.append('note', `r${i}`, payload(`note ${i}`))));
    expect(datasync).toHaveBeenCalledTimes(1);
    await j.append('final', 'r0', payload('final 0'));
    expect(datasync).toHaveBeenCalledTimes(2);
    expect((await reopen(j, path)).records).toBe(100);
  });

  it('resolves a written append before its fsync, which follows within the sync delay; a published marker asks for none', async () => {
    const path = tempPath();
    const j = await journal(path, { syncDelayMs: 50 });
    const datasync = await spyOnDatasync(path);
    const started = Date.now();
    await j.append('note', 'w', payload('in the page cache'), 'written');
    expect(datasync).not.toHaveBeenCalled();
    // What a killed process leaves: the file as written, read by the next start.
    expect(entries(await journal(path))).toEqual({ w: { kind: 'note', payload: 'in the page cache' } });
    await vi.waitFor(() => expect(datasync).toHaveBeenCalledTimes(1), { timeout: 1_000, interval: 5 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    // A synced append in the same mode waits for the delayed fsync.
    const synced = Date.now();
    await j.append('final', 'w', payload('final'));
    expect(datasync).toHaveBeenCalledTimes(2);
    expect(Date.now() - synced).toBeGreaterThanOrEqual(45);
    j.published('w');
    await new Promise((r) => setTimeout(r, 100));
    expect(datasync).toHaveBeenCalledTimes(2);
  });

  it("writes and fsyncs the next group while an earlier group's fsync is still under way, and acknowledges each after its own", async () => {
    const path = tempPath();
    const j = await journal(path);
    const proto = await fileHandlePrototype(path);
    const real = proto.datasync;
    let releaseFirst: (() => void) | undefined;
    const datasync = vi.spyOn(proto, 'datasync').mockImplementation(function (this: unknown) {
      const synced = real.call(this);
      if (datasync.mock.calls.length > 1) return synced;
      // The first fsync hangs until the test lets it finish.
      return new Promise<void>((resolve) => (releaseFirst = () => void synced.then(resolve)));
    });
    const acked: string[] = [];
    const first = j.append('final', 'previous', payload('final event')).then(() => acked.push('previous'));
    try {
      await vi.waitFor(() => expect(datasync).toHaveBeenCalledTimes(1));
      const note = j.append('note', 'next', payload('write-ahead note')).then(() => acked.push('next'));
      await vi.waitFor(() => expect(datasync).toHaveBeenCalledTimes(2));
      await note;
      expect(acked).toEqual(['next']);
    } finally {
      releaseFirst?.();
    }
    await first;
    expect(acked).toEqual(['next', 'previous']);
    expect(Object.keys(entries(await reopen(j, path))).sort()).toEqual(['next', 'previous']);
  });

  it('skips a torn tail with one log line and truncates it away', async () => {
    const path = tempPath();
    const j = await journal(path);
    await j.append('note', 'a', payload('first'));
    await j.append('final', 'b', payload('second'));
    await j.close();
    const whole = statSync(path).size;
    truncateSync(path, whole - 5);
    const { logger, lines } = recordingLogger();
    const again = await journal(path, { logger });
    expect(entries(again)).toEqual({ a: { kind: 'note', payload: 'first' } });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'warn', msg: 'usage journal: damaged records skipped', skippedBytes: 0, tornBytes: whole - 5 - again.bytes });
    expect(statSync(path).size).toBe(again.bytes);
    await again.close();
    // The damage is gone: the next start reads a clean file.
    const quiet = recordingLogger();
    expect(entries(await journal(path, { logger: quiet.logger }))).toEqual({ a: { kind: 'note', payload: 'first' } });
    expect(quiet.lines).toEqual([]);
  });

  it('skips a record with a bad checksum in the middle and keeps the ones after it', async () => {
    const path = tempPath();
    const j = await journal(path);
    await j.append('note', 'a', payload('first'));
    const before = statSync(path).size;
    await j.append('note', 'b', payload('second'));
    const middle = statSync(path).size - before;
    await j.append('final', 'c', payload('third'));
    await j.close();
    const bytes = readFileSync(path);
    bytes.writeUInt8(bytes.readUInt8(before + middle - 2) ^ 0xff, before + middle - 2); // a payload byte of b
    writeFileSync(path, bytes);
    const { logger, lines } = recordingLogger();
    const again = await journal(path, { logger });
    expect(entries(again)).toEqual({ a: { kind: 'note', payload: 'first' }, c: { kind: 'final', payload: 'third' } });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ skippedBytes: middle, tornBytes: 0 });
  });

  it('starts on garbage without throwing', async () => {
    const path = tempPath();
    const j = await journal(path);
    await j.close();
    writeFileSync(path, 'not a journal at all\n');
    const { logger, lines } = recordingLogger();
    const again = await journal(path, { logger });
    expect(again.records).toBe(0);
    expect(lines).toHaveLength(1);
    await again.append('note', 'x', payload('after'));
    expect(entries(await reopen(again, path))).toEqual({ x: { kind: 'note', payload: 'after' } });
  });

  it('compacts to the live records, and every acknowledged append survives compactions under way', async () => {
    const path = tempPath();
    const j = await journal(path, { compactMinBytes: 4096 });
    const live: Record<string, { kind: JournalEntry['kind']; payload: string }> = {};
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const id = `r${round}-${i}`;
          await j.append('note', id, payload(`note ${id}`));
          await j.append('final', id, payload(`final ${id}`));
          if (i % 10 === 0) live[id] = { kind: 'final', payload: `final ${id}` };
          else j.published(id);
        }),
      );
    }
    expect(j.records).toBe(Object.keys(live).length);
    await j.close();
    // Some 100 KB of records were written; compaction kept the file near the live size.
    expect(statSync(path).size).toBeLessThan(4096 + 2 * j.bytes + 4096);
    expect(existsSync(`${path}.compact`)).toBe(false);
    expect(entries(await journal(path))).toEqual(live);
  });

  it('ignores a compaction cut short before its rename (the old file is whole)', async () => {
    const path = tempPath();
    const j = await journal(path);
    await j.append('final', 'kept', payload('whole'));
    await j.close();
    writeFileSync(`${path}.compact`, readFileSync(path).subarray(0, 7));
    const again = await journal(path);
    expect(entries(again)).toEqual({ kept: { kind: 'final', payload: 'whole' } });
    expect(existsSync(`${path}.compact`)).toBe(false);
  });

  it('refuses a new id beyond the cap, always accepts one it already holds, and logs once per episode', async () => {
    const { logger, lines } = recordingLogger();
    const j = await journal(tempPath(), { maxLiveBytes: 100, logger });
    await j.append('note', 'a', payload('x'.repeat(40)));
    await expect(j.append('note', 'b', payload('x'.repeat(60)))).rejects.toBeInstanceOf(JournalFullError);
    await expect(j.append('note', 'c', payload('x'.repeat(60)))).rejects.toBeInstanceOf(JournalFullError);
    expect(lines.filter((l) => l.msg.startsWith('usage outbox full'))).toHaveLength(1);
    // The request already noted goes on: its final is bigger than the cap allows, and kept.
    await j.append('final', 'a', payload('y'.repeat(120)));
    expect(j.bytes).toBeGreaterThan(100);
    j.published('a');
    expect(j.bytes).toBe(0);
    await j.append('note', 'b', payload('x'.repeat(60)));
    expect(j.records).toBe(1);
  });

  it('without a path lives in memory only', async () => {
    const j = await journal(undefined, { maxLiveBytes: 64 });
    await j.append('note', 'm', payload('in memory'));
    expect(entries(j)).toEqual({ m: { kind: 'note', payload: 'in memory' } });
    await expect(j.append('note', 'n', payload('x'.repeat(64)))).rejects.toBeInstanceOf(JournalFullError);
    j.published('m');
    expect(j.records).toBe(0);
  });
});
