import type { Rng } from './fuzz-rng.js';

/*
 * Protobuf-aware mutation of encoded messages. A frame is parsed into a tree of wire fields
 * (length-delimited fields that parse as messages get children), mutated as a tree (values
 * replaced by edge values, fields repeated, deleted, renumbered, given the wrong wire type,
 * length prefixes lied about), encoded again, then optionally mutated as bytes (bit flips,
 * inserts, deletes, truncation, overlong varints, appended fields with huge lengths).
 */

export interface WireNode {
  field: number;
  wireType: number;
  /** Varint bytes, 8 or 4 fixed bytes, or the content of a length-delimited field. */
  value: Buffer;
  /** A length-delimited field whose content parses as fields. */
  children?: WireNode[];
  /** Written instead of the real length (length-prefix corruption). */
  lengthOverride?: bigint;
  /** Already encoded, tag included (a field repeated many times); written as is, never mutated. */
  raw?: Buffer;
}

const SMALL_VARINTS: Buffer[] = Array.from({ length: 1 << 14 }, (_, i) => (i < 128 ? Buffer.from([i]) : Buffer.from([(i & 0x7f) | 0x80, i >> 7])));

export function encodeVarint(v: bigint | number): Buffer {
  if (typeof v === 'number') {
    const small = SMALL_VARINTS[v];
    if (small) return small;
    v = BigInt(v);
  } else if (v >= 0n && v < 16_384n) {
    return SMALL_VARINTS[Number(v)] as Buffer;
  }
  let x = BigInt.asUintN(64, v);
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    out.push(b);
  } while (x > 0n);
  return Buffer.from(out);
}

function readVarint(buf: Buffer, pos: number): { value: bigint; end: number } | undefined {
  let value = 0n;
  for (let i = 0; i < 10; i++) {
    const b = buf[pos + i];
    if (b === undefined) return undefined;
    value |= BigInt(b & 0x7f) << BigInt(7 * i);
    if ((b & 0x80) === 0) return { value, end: pos + i + 1 };
  }
  return undefined;
}

/** The fields of `buf`, or undefined when it is not a well-formed sequence of fields. */
export function parseWire(buf: Buffer, depth = 0): WireNode[] | undefined {
  const nodes: WireNode[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const tag = readVarint(buf, pos);
    if (!tag || tag.value > 0xffffffffn) return undefined;
    const field = Number(tag.value >> 3n);
    const wireType = Number(tag.value & 7n);
    if (field === 0) return undefined;
    pos = tag.end;
    let value: Buffer;
    let children: WireNode[] | undefined;
    switch (wireType) {
      case 0: {
        const v = readVarint(buf, pos);
        if (!v) return undefined;
        value = buf.subarray(pos, v.end);
        pos = v.end;
        break;
      }
      case 1:
      case 5: {
        const n = wireType === 1 ? 8 : 4;
        if (pos + n > buf.length) return undefined;
        value = buf.subarray(pos, pos + n);
        pos += n;
        break;
      }
      case 2: {
        const len = readVarint(buf, pos);
        if (!len || len.end + Number(len.value) > buf.length) return undefined;
        value = buf.subarray(len.end, len.end + Number(len.value));
        pos = len.end + Number(len.value);
        if (depth < 8 && value.length > 0) children = parseWire(value, depth + 1);
        break;
      }
      default:
        return undefined;
    }
    nodes.push(children ? { field, wireType, value, children } : { field, wireType, value });
  }
  return nodes;
}

export function encodeWire(nodes: readonly WireNode[]): Buffer {
  const parts: Buffer[] = [];
  for (const n of nodes) {
    if (n.raw) {
      parts.push(n.raw);
      continue;
    }
    parts.push(encodeVarint(n.field < 1 << 25 ? n.field * 8 + (n.wireType & 7) : (BigInt(n.field) << 3n) | BigInt(n.wireType & 7)));
    if (n.wireType === 2 || n.lengthOverride !== undefined) {
      const content = n.children ? encodeWire(n.children) : n.value;
      parts.push(encodeVarint(n.lengthOverride ?? content.length), content);
    } else {
      parts.push(n.value);
    }
  }
  return Buffer.concat(parts);
}

// ---- edge values -------------------------------------------------------------------------

const VARINTS: readonly bigint[] = [
  0n, 1n, 2n, 3n, 4n, 5n, 7n, 99n, 127n, 128n, 255n, 256n, 999n, 32_767n, 65_535n, 65_536n,
  2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n,
  2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, -(2n ** 31n), -1n, -2n, -(2n ** 53n), -(2n ** 63n),
];

function f64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(v);
  return b;
}
function f32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v);
  return b;
}
const DOUBLES = [NaN, Infinity, -Infinity, -0, 0, 1, -1, 2, 1.5, 1e308, -1e308, 5e-324, 2 ** 53 + 2, 0.5, 100];
const FLOATS = [NaN, Infinity, -Infinity, -0, 0, 1, -1, 3.4e38, 1e-45];

/** Names the config knows (so a swapped field reaches deeper code) and strings parsers dislike. */
const STRINGS: readonly string[] = [
  '', ' ', 'a', '0', '-1', 'NaN', '1e309', 'null', 'true', '[]', '{}', '{', '{"type":"object"}', '{"type":"object","properties":{"a":{"$ref":"#"}}}',
  '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'prototype',
  'chat', 'embeddings', 'fallback', 'all-dead', 'slow', 'dropping', 'anthropic', 'gemini', 'nope-route',
  'small-fast', 'claude', 'gemini', 'dead-primary', 'embed-small', 'large-reasoning', 'gpt-4o-mini',
  'loadtest', 'startup-co', 'enterprise-co', 'other', 'ops', 'dollar', 'hundred', 'unlimited', 'startup', 'one-dollar',
  'k-nonexistent', 'tools', 'json_schema', 'streaming', 'embeddings', 'chat', 'embed', 'usage:read', 'admin',
  'Bearer sk-test-admin-0000000000000', 'sk-test-loadtest-00000000000', 'llmgw_0000000000000000000000000000000000000000AAAAAA',
  '\u0000', '\u0000\u0000\u0000', '\uFFFD', '\uFEFF', '😀'.repeat(64), 'é', 'ﬀ', '\u202E', ' \t\r\n', '\r\nx-injected: 1',
  '../../../etc/passwd', '%s%n%x', '${SIMULATOR_URL}', '{{7*7}}', "'; DROP TABLE x; --", '*', '?', '{a}:b', 'a:b:c',
  'role', 'user', 'system', 'tool', 'ROLE_USER', 'auto', 'none', 'required', 'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(257),
  'x'.repeat(4_097), 'y'.repeat(65_537),
];

const RAW_STRINGS: readonly Buffer[] = [
  Buffer.from([0xff]), Buffer.from([0xfe, 0xff]), Buffer.from([0xc3]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  Buffer.from([0xc0, 0x80]), Buffer.from([0xe2, 0x82]),
];

function edgeValue(rng: Rng, wireType: number): Buffer {
  switch (wireType) {
    case 0:
      return encodeVarint(rng.pick(VARINTS));
    case 1:
      return rng.chance(0.1) ? Buffer.alloc(8, 0xff) : f64(rng.pick(DOUBLES));
    case 5:
      return f32(rng.pick(FLOATS));
    default: {
      const r = rng.next();
      if (r < 0.7) return Buffer.from(rng.pick(STRINGS), 'utf8');
      if (r < 0.85) return Buffer.concat([Buffer.from('ok'), rng.pick(RAW_STRINGS), Buffer.from('ok')]);
      if (r < 0.995) return rng.bytes(rng.int(40));
      // Rarely something big (1 MiB): the byte bounds must hold before any work.
      return Buffer.alloc(1 << 20, 0x61);
    }
  }
}

// ---- tree mutations ----------------------------------------------------------------------

interface Slot {
  parent: WireNode[];
  index: number;
  node: WireNode;
}

function slots(nodes: WireNode[], out: Slot[] = []): Slot[] {
  nodes.forEach((node, index) => {
    if (node.raw) return;
    out.push({ parent: nodes, index, node });
    if (node.children) slots(node.children, out);
  });
  return out;
}

function clone(nodes: readonly WireNode[]): WireNode[] {
  return nodes.map((n) => (n.children ? { ...n, children: clone(n.children) } : { ...n }));
}

const FIELD_NUMBERS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 99, 1000, 19_000, 536_870_911];

function mutateTree(rng: Rng, tree: WireNode[]): string {
  const all = slots(tree);
  if (all.length === 0) {
    tree.push({ field: rng.pick(FIELD_NUMBERS), wireType: 2, value: edgeValue(rng, 2) });
    return 'add-field';
  }
  const s = rng.pick(all);
  switch (rng.int(9)) {
    case 0:
    case 1:
    case 2:
      delete s.node.children;
      s.node.value = edgeValue(rng, s.node.wireType);
      return 'edge-value';
    case 3: {
      const once = encodeWire([s.node]);
      // Repeated up to 5,000 times, but never past 256 KiB of frame.
      const copies = Math.max(1, Math.min(rng.pick([1, 1, 2, 3, 10, 100, 1_000, 5_000]), Math.floor((256 << 10) / once.length)));
      s.parent.splice(s.index + 1, 0, { field: s.node.field, wireType: s.node.wireType, value: once, raw: Buffer.concat(Array<Buffer>(copies).fill(once)) });
      return `repeat-${copies}`;
    }
    case 4:
      s.parent.splice(s.index, 1);
      return 'delete-field';
    case 5:
      s.node.field = rng.pick(FIELD_NUMBERS);
      return 'renumber';
    case 6:
      // The value keeps its bytes: a string read as a varint, a varint read as a length, ...
      s.node.wireType = rng.int(8);
      if (s.node.wireType !== 2) delete s.node.children;
      return 'wrong-wire-type';
    case 7: {
      const len = BigInt(s.node.children ? encodeWire(s.node.children).length : s.node.value.length);
      s.node.wireType = 2;
      s.node.lengthOverride = rng.pick([len + 1n, len > 0n ? len - 1n : 0n, 0n, 2n ** 31n - 1n, 2n ** 32n - 1n, 2n ** 62n, BigInt(rng.int(1 << 16))]);
      return 'lying-length';
    }
    default: {
      const donor = rng.pick(all).node;
      s.node.value = donor.children ? encodeWire(donor.children) : donor.value;
      s.node.children = donor.children ? clone(donor.children) : undefined;
      return 'graft';
    }
  }
}

// ---- byte mutations ----------------------------------------------------------------------

function overlong(rng: Rng, buf: Buffer): Buffer {
  // The first tag (or a random position treated as a varint start) is re-encoded with padding.
  const pos = buf.length > 0 && rng.chance(0.5) ? 0 : rng.int(buf.length + 1);
  const v = readVarint(buf, pos);
  if (!v) return Buffer.concat([buf.subarray(0, pos), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), buf.subarray(pos)]);
  const bytes = [...buf.subarray(pos, v.end)].map((b) => b | 0x80);
  const pad = rng.pick([1, 2, 4, 10 - bytes.length, 11 - bytes.length, 20]);
  const padded = [...bytes, ...Array.from({ length: Math.max(0, pad - 1) }, () => 0x80), 0x00];
  return Buffer.concat([buf.subarray(0, pos), Buffer.from(padded), buf.subarray(v.end)]);
}

function mutateBytes(rng: Rng, input: Buffer): { buf: Buffer; op: string } {
  const buf = Buffer.from(input);
  const pos = () => rng.int(buf.length + 1);
  switch (rng.int(10)) {
    case 0: {
      if (buf.length === 0) return { buf: rng.bytes(1), op: 'bit-flip' };
      const flips = 1 + rng.int(4);
      for (let i = 0; i < flips; i++) {
        const p = rng.int(buf.length);
        buf[p] = (buf[p] ?? 0) ^ (1 << rng.int(8));
      }
      return { buf, op: 'bit-flip' };
    }
    case 1: {
      const p = pos();
      return { buf: Buffer.concat([buf.subarray(0, p), rng.bytes(1 + rng.int(8)), buf.subarray(p)]), op: 'insert-bytes' };
    }
    case 2: {
      const p = pos();
      return { buf: Buffer.concat([buf.subarray(0, p), buf.subarray(p + 1 + rng.int(8))]), op: 'delete-bytes' };
    }
    case 3:
      return { buf: buf.subarray(0, rng.int(Math.max(1, buf.length))), op: 'truncate' };
    case 4: {
      if (buf.length === 0) return { buf, op: 'empty' };
      buf[rng.int(buf.length)] = rng.pick([0x00, 0x01, 0x7f, 0x80, 0xff, 0x08, 0x0a, 0x12, 0x0f, 0x0c]);
      return { buf, op: 'interesting-byte' };
    }
    case 5:
      return { buf: overlong(rng, buf), op: 'overlong-varint' };
    case 6: {
      const field = rng.pick(FIELD_NUMBERS);
      const wt = rng.int(8);
      const tag = encodeVarint((BigInt(field) << 3n) | BigInt(wt));
      const payload = wt === 2 ? Buffer.concat([encodeVarint(BigInt(rng.int(12))), rng.bytes(rng.int(12))]) : rng.bytes(rng.int(10));
      const p = rng.chance(0.5) ? buf.length : pos();
      return { buf: Buffer.concat([buf.subarray(0, p), tag, payload, buf.subarray(p)]), op: 'random-field' };
    }
    case 7: {
      const tag = encodeVarint((BigInt(rng.pick(FIELD_NUMBERS)) << 3n) | 2n);
      const len = encodeVarint(rng.pick([2n ** 31n - 1n, 2n ** 32n - 1n, 2n ** 63n, 2n ** 64n - 1n, 1n << 28n, 100_000n]));
      return { buf: Buffer.concat([buf, tag, len, rng.bytes(rng.int(6))]), op: 'huge-length' };
    }
    case 8:
      return { buf: rng.bytes(rng.int(rng.chance(0.9) ? 64 : 2_048)), op: 'random-bytes' };
    default:
      return { buf: Buffer.alloc(0), op: 'empty' };
  }
}

/** One mutated frame from `seed`: a few tree and/or byte mutations; `ops` says which, for the report. */
export function mutateFrame(rng: Rng, seed: Buffer): { frame: Buffer; ops: string[] } {
  const ops: string[] = [];
  let frame = seed;
  const tree = parseWire(seed);
  if (tree && rng.chance(0.6)) {
    const t = clone(tree);
    const n = 1 + rng.int(3);
    for (let i = 0; i < n; i++) ops.push(mutateTree(rng, t));
    frame = encodeWire(t);
  }
  if (ops.length === 0 || rng.chance(0.3)) {
    const n = 1 + rng.int(ops.length === 0 ? 3 : 1);
    for (let i = 0; i < n; i++) {
      const m = mutateBytes(rng, frame);
      frame = m.buf;
      ops.push(m.op);
    }
  }
  return { frame, ops };
}
