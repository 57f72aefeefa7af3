import Anthropic from '@anthropic-ai/sdk';
import { encode } from 'gpt-tokenizer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PER_MESSAGE_TOKEN_OVERHEAD, REPLY_PRIMING_TOKENS, startSimulator, type Simulator } from './index.js';

let sim: Simulator;
let client: Anthropic;

beforeAll(async () => {
  sim = await startSimulator();
  client = new Anthropic({ apiKey: 'test-key', baseURL: sim.url, maxRetries: 0 });
});
afterAll(async () => {
  await sim.close();
});

const weatherTool: Anthropic.Tool = {
  name: 'get_weather',
  description: 'Weather for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } }, required: ['city', 'unit'] },
};

describe('Anthropic Messages via the official client', () => {
  it('messages.create returns the documented shape and usage', async () => {
    const msg = await client.messages.create({
      model: 'claude-sonnet-4-5',
      max_tokens: 256,
      system: [{ type: 'text', text: 'Be brief.' }],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello from the test' }] }],
    });
    expect(msg.id).toMatch(/^msg_/);
    expect(msg).toMatchObject({ type: 'message', role: 'assistant', model: 'claude-sonnet-4-5', stop_reason: 'end_turn', stop_sequence: null });
    expect(msg.content).toEqual([{ type: 'text', text: 'Simulated reply from claude-sonnet-4-5: Hello from the test' }]);
    expect(msg.usage.input_tokens).toBe(REPLY_PRIMING_TOKENS + encode('Be brief.').length + encode('Hello from the test').length + 2 * PER_MESSAGE_TOKEN_OVERHEAD);
    expect(msg.usage.output_tokens).toBe(encode('Simulated reply from claude-sonnet-4-5: Hello from the test').length);
  });

  it('stops at max_tokens with stop_reason max_tokens', async () => {
    const msg = await client.messages.create({ model: 'claude', max_tokens: 3, messages: [{ role: 'user', content: 'Tell me everything' }] });
    expect(msg.stop_reason).toBe('max_tokens');
    expect(msg.usage.output_tokens).toBe(3);
  });

  it('messages.stream emits text deltas and a final message with usage', async () => {
    const stream = client.messages.stream({ model: 'claude', max_tokens: 1000, messages: [{ role: 'user', content: 'go [[tokens:30]]' }] });
    let deltas = 0;
    stream.on('text', () => deltas++);
    const final = await stream.finalMessage();
    expect(deltas).toBeGreaterThan(8);
    expect(final.stop_reason).toBe('end_turn');
    expect(final.usage.output_tokens).toBe(30);
    expect(final.usage.input_tokens).toBe(REPLY_PRIMING_TOKENS + encode('go [[tokens:30]]').length + PER_MESSAGE_TOKEN_OVERHEAD);
    const block = final.content[0];
    expect(block?.type === 'text' && encode(block.text).length).toBe(30);
  });

  it('stream: true yields the documented event sequence', async () => {
    const stream = await client.messages.create({ model: 'claude', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'hi there' }] });
    const types: string[] = [];
    let outputTokens = 0;
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'message_delta') {
        expect(ev.delta.stop_reason).toBe('end_turn');
        outputTokens = ev.usage.output_tokens;
      }
      if (ev.type === 'message_start') expect(ev.message.usage.input_tokens).toBeGreaterThan(0);
    }
    const deltas = types.filter((t) => t === 'content_block_delta').length;
    expect(deltas).toBeGreaterThan(2);
    expect(types.slice(0, 2)).toEqual(['message_start', 'content_block_start']);
    expect(types.slice(-3)).toEqual(['content_block_stop', 'message_delta', 'message_stop']);
    expect(outputTokens).toBe(encode('Simulated reply from claude: hi there').length);
  });

  it('returns tool_use for [[tool]], JSON and streamed (input_json_delta)', async () => {
    const params = { model: 'claude', max_tokens: 200, tools: [weatherTool], messages: [{ role: 'user' as const, content: 'weather? [[tool]]' }] };
    const msg = await client.messages.create(params);
    expect(msg.stop_reason).toBe('tool_use');
    const block = msg.content[0];
    expect(block?.type).toBe('tool_use');
    if (block?.type !== 'tool_use') throw new Error('expected tool_use');
    expect(block.id).toMatch(/^toolu_/);
    expect(block).toMatchObject({ name: 'get_weather', input: { city: 'example', unit: 'c' } });

    const stream = client.messages.stream(params);
    let jsonDeltas = 0;
    stream.on('inputJson', () => jsonDeltas++);
    const final = await stream.finalMessage();
    expect(jsonDeltas).toBeGreaterThan(1);
    expect(final.stop_reason).toBe('tool_use');
    expect(final.content[0]).toMatchObject({ type: 'tool_use', name: 'get_weather', input: { city: 'example', unit: 'c' } });

    const followUp = await client.messages.create({
      ...params,
      messages: [
        ...params.messages,
        { role: 'assistant', content: msg.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: block.id, content: '20 degrees' }] },
      ],
    });
    expect(followUp.stop_reason).toBe('end_turn');
  });

  it('refuses with stop_reason refusal', async () => {
    const msg = await client.messages.create({ model: 'claude', max_tokens: 100, messages: [{ role: 'user', content: '[[refuse]]' }] });
    expect(msg.stop_reason).toBe('refusal');
    const final = await client.messages.stream({ model: 'claude', max_tokens: 100, messages: [{ role: 'user', content: '[[refuse]]' }] }).finalMessage();
    expect(final.stop_reason).toBe('refusal');
  });

  it('counts tokens like message usage', async () => {
    const params = { model: 'claude', system: 'sys', messages: [{ role: 'user' as const, content: 'count me' }] };
    const counted = await client.messages.countTokens(params);
    const msg = await client.messages.create({ ...params, max_tokens: 10 });
    expect(counted.input_tokens).toBe(msg.usage.input_tokens);
  });

  it.each([
    ['a missing x-api-key', { 'x-api-key': null }, Anthropic.AuthenticationError, 'authentication_error'],
    ['bad-key', { 'x-api-key': 'bad-key' }, Anthropic.AuthenticationError, 'authentication_error'],
    ['a missing anthropic-version', { 'anthropic-version': null }, Anthropic.BadRequestError, 'invalid_request_error'],
  ])('rejects %s in the Anthropic error format', async (_label, headers, errorClass, type) => {
    const bad = new Anthropic({ apiKey: 'k', baseURL: sim.url, maxRetries: 0, defaultHeaders: headers });
    const err = await bad.messages.create({ model: 'claude', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(errorClass);
    expect((err as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type } });
  });

  it('requires max_tokens', async () => {
    const res = await fetch(`${sim.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'claude', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
  });
});
