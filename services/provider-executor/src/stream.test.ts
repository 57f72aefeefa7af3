import { describe, expect, it } from 'vitest';
import { SseParser } from './stream.js';

function parse(chunks: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const p = new SseParser((e, d) => out.push([e, d]));
  for (const c of chunks) p.push(new TextEncoder().encode(c));
  p.end();
  return out;
}

describe('SseParser', () => {
  it.each([
    ['LF', ['event: a\ndata: 1\n\ndata: 2\n\n']],
    ['CRLF', ['event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n']],
    ['split everywhere', ['ev', 'ent: a\r', '\ndata: 1\r\n', '\r\ndat', 'a: 2\n', '\n']],
  ])('parses events with %s line ends', (_name, chunks) => {
    expect(parse(chunks)).toEqual([
      ['a', '1'],
      ['', '2'],
    ]);
  });

  it('joins multi-line data, ignores comments and fields without data', () => {
    expect(parse([': keep-alive\n\nevent: ping\n\ndata: x\ndata:y\n\n'])).toEqual([['', 'x\ny']]);
  });

  it('decodes multi-byte characters split across chunks', () => {
    const bytes = new TextEncoder().encode('data: héllo ✓\n\n');
    const out: string[] = [];
    const p = new SseParser((_e, d) => out.push(d));
    for (let i = 0; i < bytes.length; i++) p.push(bytes.subarray(i, i + 1));
    expect(out).toEqual(['héllo ✓']);
  });

  it('flushes a last event without a trailing blank line at end()', () => {
    expect(parse(['data: last'])).toEqual([['', 'last']]);
  });
});
