import { decode, encode } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';
import { LONG_REPLY_TOKENS, PER_MESSAGE_TOKEN_OVERHEAD, REPLY_PRIMING_TOKENS, buildReply, chunkString, chunkToolArgs, chunkTokens, countPromptTokens } from './reply.js';
import { sampleFromSchema } from './schema-sample.js';

const base = { model: 'm', endsWithToolResult: false, tools: [] as const };
const weatherTool = {
  name: 'get_weather',
  schema: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['c', 'f'] }, note: { type: 'string' } }, required: ['city', 'unit'] },
};

describe('buildReply', () => {
  it('echoes the first words of the last user message, markers stripped', () => {
    const r = buildReply({ ...base, lastUserText: 'one two [[x]] three four five six seven eight nine ten' });
    expect(r).toMatchObject({ kind: 'text', text: 'Simulated reply from m: one two three four five six seven eight', truncated: false });
    if (r.kind === 'text') expect(r.outputTokens).toBe(encode(r.text).length);
  });

  it.each([1, 7, 50, 1234])('[[tokens:%i]] gives exactly that many output tokens', (n) => {
    const r = buildReply({ ...base, lastUserText: `go [[tokens:${n}]]` });
    expect(r.kind).toBe('text');
    if (r.kind === 'text') {
      expect(r.outputTokens).toBe(n);
      expect(r.tokens).toHaveLength(n);
      expect(r.text).toBe(decode([...r.tokens]));
    }
  });

  it('[[long]] gives a long reply', () => {
    expect(buildReply({ ...base, lastUserText: '[[long]]' }).outputTokens).toBe(LONG_REPLY_TOKENS);
  });

  it.each([
    [3, true],
    [1000, false],
  ])('max tokens %i: truncated=%s', (max, truncated) => {
    const full = encode('Simulated reply from m: alpha beta gamma delta').length;
    const r = buildReply({ ...base, lastUserText: 'alpha beta gamma delta', maxTokens: max });
    expect(r.kind === 'text' && r.truncated).toBe(truncated);
    expect(r.outputTokens).toBe(Math.min(max, full));
    expect(r.kind === 'text' && r.text).toBe(truncated ? 'Simulated reply' : 'Simulated reply from m: alpha beta gamma delta');
  });

  it('[[tool]] calls the first tool with schema-built arguments', () => {
    const r = buildReply({ ...base, lastUserText: 'weather? [[tool]]', tools: [weatherTool, { name: 'other', schema: {} }] });
    expect(r).toMatchObject({ kind: 'tool', name: 'get_weather', args: { city: 'example', unit: 'c' } });
  });

  it.each([
    ['no tools given', [], false],
    ['conversation ends with a tool result', [weatherTool], true],
  ])('[[tool]] is ignored when %s', (_label, tools, endsWithToolResult) => {
    expect(buildReply({ ...base, lastUserText: '[[tool]]', tools, endsWithToolResult }).kind).toBe('text');
  });

  it('[[refuse]] refuses', () => {
    expect(buildReply({ ...base, lastUserText: 'please [[refuse]]' })).toEqual({ kind: 'refusal', outputTokens: 0 });
  });

  it('json mode returns a JSON object string', () => {
    const r = buildReply({ ...base, lastUserText: 'hi', json: { schema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } } });
    expect(r.kind === 'text' && JSON.parse(r.text)).toEqual({ n: 1 });
    const plain = buildReply({ ...base, lastUserText: 'hi', json: {} });
    expect(plain.kind === 'text' && JSON.parse(plain.text)).toEqual({ model: 'm', reply: 'Simulated reply from m: hi' });
  });
});

describe('countPromptTokens', () => {
  it('adds the reply priming, the per-message overhead and the tools JSON', () => {
    const texts = ['You are terse.', 'Hello there friend'];
    const expected = REPLY_PRIMING_TOKENS + encode(texts[0] as string).length + encode(texts[1] as string).length + 2 * PER_MESSAGE_TOKEN_OVERHEAD;
    expect(countPromptTokens(texts)).toBe(expected);
    expect(countPromptTokens(texts, '{"a":1}')).toBe(expected + encode('{"a":1}').length);
  });

  it('treats special-token strings as plain text', () => {
    expect(countPromptTokens(['<|endoftext|>'])).toBeGreaterThan(REPLY_PRIMING_TOKENS + PER_MESSAGE_TOKEN_OVERHEAD + 1);
  });
});

describe('chunkTokens / chunkString / chunkToolArgs', () => {
  it.each(['Simulated reply from model: hello world, how are you today?', 'héllo 日本語 wörld 🎉🎉 ok'])('pieces of %j join back to the text', (text) => {
    const pieces = chunkTokens(encode(text));
    expect(pieces.length).toBeGreaterThan(2);
    expect(pieces.map((p) => p.text).join('')).toBe(text);
    expect(pieces.reduce((s, p) => s + p.tokenCount, 0)).toBe(encode(text).length);
    for (const p of pieces) expect(p.tokenCount).toBeLessThanOrEqual(4 + 3);
  });

  it('splits strings on code points', () => {
    expect(chunkString('ab🎉cd', 3)).toEqual(['ab🎉', 'cd']);
  });

  it('tool-call argument pieces carry output tokens that add up to the reply usage', () => {
    const schema = { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' }, note: { type: 'string' } } };
    const reply = buildReply({ model: 'm', lastUserText: '[[tool]]', endsWithToolResult: false, tools: [{ name: 'get_weather', schema }] });
    if (reply.kind !== 'tool') throw new Error('expected a tool reply');
    const pieces = chunkToolArgs(reply);
    expect(pieces.length).toBeGreaterThan(2);
    expect(pieces.map((p) => p.text)).toEqual(chunkString(reply.argsJson));
    expect(pieces.reduce((s, p) => s + p.tokenCount, 0)).toBe(reply.outputTokens);
    expect(pieces[0]?.tokenCount).toBeGreaterThanOrEqual(encode('get_weather').length);
    for (const p of pieces) expect(p.tokenCount).toBeGreaterThanOrEqual(0);
  });
});

describe('sampleFromSchema', () => {
  it.each([
    [{ type: 'string' }, 'example'],
    [{ type: 'integer', minimum: 5 }, 5],
    [{ type: ['null', 'boolean'] }, true],
    [{ type: 'array', items: { type: 'number' } }, [1]],
    [{ enum: ['x', 'y'] }, 'x'],
    [{ anyOf: [{ type: 'null' }, { type: 'string' }] }, 'example'],
    [{ type: 'OBJECT', properties: { a: { type: 'STRING' } } }, { a: 'example' }],
    [{ type: 'object', properties: { a: { type: 'string' }, b: { type: 'number' } }, required: ['b'] }, { b: 1 }],
  ])('%j -> %j', (schema, expected) => {
    expect(sampleFromSchema(schema)).toEqual(expected);
  });
});
