import { mkdir, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '@llmgw/logging';

/*
 * File format: a sequence of records, appended and never rewritten in place.
 *
 *   magic   u32 LE  0x4a55474c ("LGUJ"): where a reader resynchronises after a damaged record
 *   length  u32 LE  bytes of body, at most MAX_BODY_BYTES
 *   crc     u32 LE  CRC-32 of the length field and the body
 *   body    kind u8 (1 note, 2 final, 3 published) · id length u16 LE · id (UTF-8) · payload
 *
 * The payload of a note or a final is an opaque blob (the publisher's encoded UsageRecorded); a
 * published marker has none. Replaying the records in order gives the live set: a note or a
 * final sets its id's entry, a published marker removes it.
 */

const MAGIC = 0x4a55474c;
const MAGIC_BYTES = Buffer.from([0x4c, 0x47, 0x55, 0x4a]);
const HEADER_BYTES = 12;
/** A usage event is a few hundred bytes; a longer length field is damage, not a record. */
const MAX_BODY_BYTES = 1 << 20;
const KIND_BYTE = { note: 1, final: 2, published: 3 } as const;
const KIND_OF: Record<number, RecordKind | undefined> = { 1: 'note', 2: 'final', 3: 'published' };
/** Below this file size compaction is not worth its fsyncs. */
const DEFAULT_COMPACT_MIN_BYTES = 1 << 20;

type RecordKind = keyof typeof KIND_BYTE;
/** A write-ahead note (what a request costs if the process dies now) or a request's final event. */
export type EntryKind = Exclude<RecordKind, 'published'>;

export interface JournalEntry {
  kind: EntryKind;
  payload: Uint8Array;
}

interface Live extends JournalEntry {
  /** The record as written: what compaction copies. */
  frame: Buffer;
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

/** The journal holds `maxLiveBytes` of live records: a new id is refused, not written. */
export class JournalFullError extends Error {
  override name = 'JournalFullError';
}

export interface UsageJournalOptions {
  /** File of the journal; none keeps it in memory only (monolithic mode, unit tests). */
  path?: string | undefined;
  /** Cap on live record bytes (entries not yet published). */
  maxLiveBytes: number;
  logger: Logger;
  /** Compaction runs once the file is at least this large and twice the live bytes. */
  compactMinBytes?: number;
  /** How long a written record may wait for its fsync (default 0: the event-loop turn's records share one). */
  syncDelayMs?: number;
}

function frameOf(kind: RecordKind, id: string, payload: Uint8Array): Buffer {
  const idBytes = Buffer.from(id, 'utf8');
  const bodyLength = 3 + idBytes.length + payload.length;
  const frame = Buffer.allocUnsafe(HEADER_BYTES + bodyLength);
  frame.writeUInt32LE(MAGIC, 0);
  frame.writeUInt32LE(bodyLength, 4);
  frame.writeUInt8(KIND_BYTE[kind], HEADER_BYTES);
  frame.writeUInt16LE(idBytes.length, HEADER_BYTES + 1);
  idBytes.copy(frame, HEADER_BYTES + 3);
  frame.set(payload, HEADER_BYTES + 3 + idBytes.length);
  frame.writeUInt32LE(checksum(frame, bodyLength), 8);
  return frame;
}

/** CRC-32 of a frame's length field and body. */
function checksum(frame: Buffer, bodyLength: number): number {
  return crc32(frame.subarray(HEADER_BYTES, HEADER_BYTES + bodyLength), crc32(frame.subarray(4, 8)));
}

interface ParsedRecord {
  kind: RecordKind;
  id: string;
  payload: Uint8Array;
  frame: Buffer;
}

/** The record at `pos`, or undefined when the bytes there are not a whole, intact record. */
function recordAt(data: Buffer, pos: number): ParsedRecord | undefined {
  if (pos + HEADER_BYTES > data.length || data.readUInt32LE(pos) !== MAGIC) return undefined;
  const bodyLength = data.readUInt32LE(pos + 4);
  if (bodyLength < 3 || bodyLength > MAX_BODY_BYTES || pos + HEADER_BYTES + bodyLength > data.length) return undefined;
  const frame = data.subarray(pos, pos + HEADER_BYTES + bodyLength);
  if (frame.readUInt32LE(8) !== checksum(frame, bodyLength)) return undefined;
  const kind = KIND_OF[frame.readUInt8(HEADER_BYTES)];
  const idLength = frame.readUInt16LE(HEADER_BYTES + 1);
  if (!kind || 3 + idLength > bodyLength) return undefined;
  const id = frame.toString('utf8', HEADER_BYTES + 3, HEADER_BYTES + 3 + idLength);
  // Copied: a live entry must not keep the whole file's buffer alive.
  const copy = Buffer.from(frame);
  return { kind, id, payload: copy.subarray(HEADER_BYTES + 3 + idLength), frame: copy };
}

async function writeFully(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
}

/**
 * What an append waits for: `synced` until an fsync made it survive a host crash; `written` only
 * until it is in the file (the kernel's page cache), which a crash of this process cannot undo.
 */
export type Durability = 'written' | 'synced';

/** A record appended while a compaction runs: written to the new file once it is in place. */
interface Held {
  frame: Buffer;
  waiter?: Waiter;
  until: Durability;
}

/**
 * The executor's usage journal: every request's write-ahead notes and final event, kept until
 * the bus has taken the event, so that neither a bus outage nor a crash loses money a provider
 * billed. A record is written to the file at once with a synchronous write(2): a few hundred
 * bytes into the page cache cost 2–4 µs, where fs.promises' trip through the thread pool cost
 * 50–57 µs of CPU on this project's bench machine. fsync (fdatasync) is what costs, in CPU as in
 * time, and runs off the event loop: one for every record written since the last one began,
 * `syncDelayMs` after the first of them (0: the event-loop turn's records share one), so the
 * groups of one turn share it and one group's fsync does not wait for the previous one's.
 * Compaction (live records to a temp file, fsync, rename, fsync the directory) keeps the file
 * near the live size. A damaged record is skipped at start, never thrown on. Without a path the
 * journal lives in memory only.
 */
export class UsageJournal {
  private readonly live = new Map<string, Live>();
  private liveBytes = 0;
  private fileBytes = 0;
  private fh: FileHandle | undefined;
  /** Appends written since the last fsync began that wait for the next one. */
  private syncWaiters: Waiter[] = [];
  private syncTimer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  /** fsyncs under way (they overlap each other and later writes). */
  private readonly syncing = new Set<Promise<void>>();
  private compacting: Promise<void> | undefined;
  private held: Held[] = [];
  private failure: Error | undefined;
  /** Set from the first refusal until a new id is accepted again: one log line per episode. */
  private full = false;
  private readonly compactMinBytes: number;
  private readonly syncDelayMs: number;

  private constructor(private readonly opts: UsageJournalOptions) {
    this.compactMinBytes = opts.compactMinBytes ?? DEFAULT_COMPACT_MIN_BYTES;
    this.syncDelayMs = opts.syncDelayMs ?? 0;
  }

  static async open(opts: UsageJournalOptions): Promise<UsageJournal> {
    const journal = new UsageJournal(opts);
    if (opts.path) await journal.load(opts.path);
    return journal;
  }

  /** Live entries: not yet published. */
  get records(): number {
    return this.live.size;
  }

  /** Bytes of the live entries (what the cap bounds). */
  get bytes(): number {
    return this.liveBytes;
  }

  entries(): [string, JournalEntry][] {
    return [...this.live].map(([id, { kind, payload }]) => [id, { kind, payload }]);
  }

  /**
   * Sets `id`'s entry; resolves once it is as durable as `until` asks. An id already in the
   * journal is always accepted (a request whose provider call may have been billed must be
   * recorded); a new id is refused with JournalFullError when it would take the live bytes over
   * the cap, and with the I/O error after the file failed.
   */
  append(kind: EntryKind, id: string, payload: Uint8Array, until: Durability = 'synced'): Promise<void> {
    const frame = frameOf(kind, id, payload);
    const prev = this.live.get(id);
    if (!prev) {
      if (this.failure) return Promise.reject(this.failure);
      if (this.liveBytes + frame.length > this.opts.maxLiveBytes) {
        if (!this.full) this.opts.logger.error({ liveBytes: this.liveBytes, maxBytes: this.opts.maxLiveBytes }, 'usage outbox full: refusing new requests until the bus takes its events');
        this.full = true;
        return Promise.reject(new JournalFullError('usage outbox full'));
      }
      this.full = false;
    }
    this.liveBytes += frame.length - (prev?.frame.length ?? 0);
    this.live.set(id, { kind, payload, frame });
    if (!this.fh) return Promise.resolve();
    return new Promise((resolve, reject) => this.store({ frame, until, waiter: { resolve, reject } }));
  }

  /**
   * Removes `id`'s entry. Its marker is written at once but asks for no fsync of its own: lost
   * in a host crash, it only republishes an event the bus drops as a duplicate.
   */
  published(id: string): void {
    const prev = this.live.get(id);
    if (!prev) return;
    this.live.delete(id);
    this.liveBytes -= prev.frame.length;
    if (this.fh) this.store({ frame: frameOf('published', id, new Uint8Array()), until: 'written' });
  }

  /** fsyncs what was written, waits for the fsyncs and the compaction under way, and closes the file. */
  async close(): Promise<void> {
    while (this.compacting || this.syncTimer) {
      await this.compacting;
      if (this.syncTimer) this.runSync();
    }
    await Promise.all(this.syncing);
    await this.fh?.close();
    this.fh = undefined;
  }

  private store(rec: Held): void {
    if (this.compacting) {
      this.held.push(rec);
      return;
    }
    const fh = this.fh as FileHandle;
    try {
      for (let off = 0; off < rec.frame.length; ) off += writeSync(fh.fd, rec.frame, off, rec.frame.length - off);
    } catch (err) {
      void this.fail(err, rec.waiter ? [rec.waiter] : []);
      return;
    }
    this.fileBytes += rec.frame.length;
    if (!rec.waiter) return;
    if (rec.until === 'written') rec.waiter.resolve();
    else this.syncWaiters.push(rec.waiter);
    this.scheduleSync();
  }

  private scheduleSync(): void {
    if (this.syncTimer) return;
    const run = () => this.runSync();
    this.syncTimer = this.syncDelayMs > 0 ? setTimeout(run, this.syncDelayMs) : setImmediate(run);
  }

  private runSync(): void {
    clearTimeout(this.syncTimer as NodeJS.Timeout);
    clearImmediate(this.syncTimer as NodeJS.Immediate);
    this.syncTimer = undefined;
    const fh = this.fh;
    if (!fh || this.compacting) return;
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    const sync = fh.datasync().then(
      () => {
        for (const w of waiters) w.resolve();
      },
      (err: unknown) => this.fail(err, waiters),
    );
    this.syncing.add(sync);
    void sync.finally(() => this.syncing.delete(sync));
    if (this.fileBytes >= this.compactMinBytes && this.fileBytes >= 2 * this.liveBytes) {
      this.compacting = this.compact()
        .catch((err: unknown) => this.fail(err, []))
        .finally(() => {
          this.compacting = undefined;
          this.release();
        });
    }
  }

  /** Writes what was appended during the compaction to the new file. */
  private release(): void {
    const held = this.held;
    this.held = [];
    if (!this.fh) {
      for (const h of held) h.waiter?.reject(this.failure as Error);
      return;
    }
    for (const h of held) this.store(h);
    // Appends that waited for an fsync the compaction put off.
    if (this.syncWaiters.length > 0) this.scheduleSync();
  }

  /**
   * After a failed write or fsync the file cannot be trusted (the kernel may have dropped the
   * pages): the journal goes on in memory for the requests it holds and refuses new ones.
   */
  private async fail(err: unknown, waiters: Waiter[]): Promise<void> {
    if (!this.failure) {
      this.failure = new Error('usage outbox not writable', { cause: err });
      this.opts.logger.error({ err, path: this.opts.path }, 'usage journal write failed: refusing new requests until restart');
    }
    const fh = this.fh;
    this.fh = undefined;
    const pending = [...waiters, ...this.syncWaiters, ...this.held.flatMap((h) => (h.waiter ? [h.waiter] : []))];
    this.syncWaiters = [];
    this.held = [];
    for (const w of pending) w.reject(this.failure);
    await fh?.close().catch(() => undefined);
  }

  /**
   * Writes the live records to a temp file and renames it over the journal: either file is whole
   * at any time. No fsync of the old file may still be under way when it is closed.
   */
  private async compact(): Promise<void> {
    await Promise.all(this.syncing);
    const path = this.opts.path as string;
    const tmp = `${path}.compact`;
    const data = Buffer.concat([...this.live.values()].map((l) => l.frame));
    const out = await open(tmp, 'w');
    try {
      await writeFully(out, data);
      await out.datasync();
    } finally {
      await out.close();
    }
    await rename(tmp, path);
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    const old = this.fh;
    if (!old) return;
    this.fh = await open(path, 'a');
    this.fileBytes = data.length;
    // Every live record is in the new file, fsynced: appends that waited on the old one are durable.
    for (const w of this.syncWaiters.splice(0)) w.resolve();
    await old.close();
  }

  private async load(path: string): Promise<void> {
    await mkdir(dirname(path), { recursive: true });
    // A compaction cut short: the journal itself is still whole.
    await rm(`${path}.compact`, { force: true });
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      data = Buffer.alloc(0);
    }
    let skippedBytes = 0;
    let tornBytes = 0;
    let pos = 0;
    while (pos < data.length) {
      const rec = recordAt(data, pos);
      if (rec) {
        this.replay(rec);
        pos += rec.frame.length;
        continue;
      }
      let next = data.indexOf(MAGIC_BYTES, pos + 1);
      while (next >= 0 && !recordAt(data, next)) next = data.indexOf(MAGIC_BYTES, next + 1);
      if (next < 0) {
        tornBytes = data.length - pos;
        break;
      }
      skippedBytes += next - pos;
      pos = next;
    }
    this.fh = await open(path, 'a');
    this.fileBytes = data.length;
    if (skippedBytes + tornBytes > 0) {
      this.opts.logger.warn({ path, skippedBytes, tornBytes, records: this.live.size }, 'usage journal: damaged records skipped');
      // Rewrites the intact live records only: the damage does not outlive this start.
      await this.compact();
    }
  }

  private replay(rec: ParsedRecord): void {
    const prev = this.live.get(rec.id);
    if (prev) this.liveBytes -= prev.frame.length;
    if (rec.kind === 'published') {
      this.live.delete(rec.id);
      return;
    }
    this.live.set(rec.id, { kind: rec.kind, payload: rec.payload, frame: rec.frame });
    this.liveBytes += rec.frame.length;
  }
}
