import { encode } from 'gpt-tokenizer';
import OpenAI, { AzureOpenAI } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PER_MESSAGE_TOKEN_OVERHEAD, REPLY_PRIMING_TOKENS, startSimulator, type Simulator } from './index.js';

let sim: Simulator;
let client: OpenAI;

beforeAll(async () => {
  sim = await startSimulator();
  client = new OpenAI({ apiKey: 'test-key', baseURL: `${sim.url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await sim.close();
});

const weatherTool: OpenAI.Chat.Completions.ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city', 'days'] },
  },
};

describe('OpenAI chat completions via the official client', () => {
  it('returns the documented shape with deterministic content and usage', async () => {
    const res = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hello there friend' },
      ],
    });
    expect(res.id).toMatch(/^chatcmpl-/);
    expect(res.object).toBe('chat.completion');
    expect(res.model).toBe('gpt-4o-mini');
    expect(typeof res.created).toBe('number');
    const choice = res.choices[0];
    expect(choice).toMatchObject({ index: 0, finish_reason: 'stop', logprobs: null });
    expect(choice?.message).toMatchObject({ role: 'assistant', content: 'Simulated reply from gpt-4o-mini: Hello there friend', refusal: null });
    const prompt = REPLY_PRIMING_TOKENS + encode('Be brief.').length + encode('Hello there friend').length + 2 * PER_MESSAGE_TOKEN_OVERHEAD;
    const completion = encode('Simulated reply from gpt-4o-mini: Hello there friend').length;
    expect(res.usage).toMatchObject({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });
  });

  it('truncates at max_completion_tokens with finish_reason length', async () => {
    const res = await client.chat.completions.create({
      model: 'gpt-4o',
      max_completion_tokens: 4,
      messages: [{ role: 'user', content: 'a long question here' }],
    });
    expect(res.choices[0]?.finish_reason).toBe('length');
    expect(res.usage?.completion_tokens).toBe(4);
    expect(encode(res.choices[0]?.message.content ?? '').length).toBe(4);
  });

  it('streams several deltas and a final usage chunk with include_usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'count [[tokens:40]]' }],
    });
    let text = '';
    let deltas = 0;
    let finish: string | null | undefined;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let emptyChoicesChunks = 0;
    for await (const chunk of stream) {
      if (chunk.choices.length === 0) emptyChoicesChunks++;
      const c = chunk.choices[0];
      if (c?.delta.content) {
        text += c.delta.content;
        deltas++;
      }
      if (c?.finish_reason) finish = c.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(deltas).toBeGreaterThan(10);
    expect(encode(text).length).toBe(40);
    expect(finish).toBe('stop');
    expect(emptyChoicesChunks).toBe(1);
    expect(usage?.completion_tokens).toBe(40);
  });

  it('sends no usage chunk without include_usage', async () => {
    const stream = await client.chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.every((c) => c.choices.length === 1 && !c.usage)).toBe(true);
  });

  it('the stream helper accumulates the final completion', async () => {
    const runner = client.chat.completions.stream({ model: 'gpt-4o', messages: [{ role: 'user', content: 'stream please' }] });
    const final = await runner.finalChatCompletion();
    expect(final.choices[0]?.message.content).toBe('Simulated reply from gpt-4o: stream please');
  });

  it('returns tool_calls for [[tool]]', async () => {
    const res = await client.chat.completions.create({
      model: 'gpt-4o',
      tools: [weatherTool],
      messages: [{ role: 'user', content: 'weather in Paris? [[tool]]' }],
    });
    const choice = res.choices[0];
    expect(choice?.finish_reason).toBe('tool_calls');
    expect(choice?.message.content).toBeNull();
    const call = choice?.message.tool_calls?.[0];
    expect(call?.type).toBe('function');
    expect(call?.id).toMatch(/^call_/);
    if (call?.type !== 'function') throw new Error('expected a function call');
    expect(call.function.name).toBe('get_weather');
    expect(JSON.parse(call.function.arguments)).toEqual({ city: 'example', days: 1 });

    // Answering with the tool result gives a text reply (no endless tool loop).
    const followUp = await client.chat.completions.create({
      model: 'gpt-4o',
      tools: [weatherTool],
      messages: [
        { role: 'user', content: 'weather in Paris? [[tool]]' },
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: '{"temp":20}' },
      ],
    });
    expect(followUp.choices[0]?.finish_reason).toBe('stop');
  });

  it('streams tool call deltas with an index', async () => {
    const runner = client.chat.completions.stream({
      model: 'gpt-4o',
      tools: [weatherTool],
      messages: [{ role: 'user', content: '[[tool]]' }],
    });
    let argDeltas = 0;
    runner.on('chunk', (chunk) => {
      const tc = chunk.choices[0]?.delta.tool_calls?.[0];
      if (tc) {
        expect(tc.index).toBe(0);
        argDeltas++;
      }
    });
    const final = await runner.finalChatCompletion();
    expect(argDeltas).toBeGreaterThan(2);
    const call = final.choices[0]?.message.tool_calls?.[0];
    expect(final.choices[0]?.finish_reason).toBe('tool_calls');
    expect(call?.type === 'function' && JSON.parse(call.function.arguments)).toEqual({ city: 'example', days: 1 });
  });

  it.each([
    [{ type: 'json_object' } as const, (v: unknown) => expect(v).toMatchObject({ model: 'gpt-4o' })],
    [
      {
        type: 'json_schema',
        json_schema: {
          name: 'person',
          schema: { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' } } }, required: ['name', 'age', 'tags'] },
        },
      } as const,
      (v: unknown) => expect(v).toEqual({ name: 'example', age: 1, tags: ['example'] }),
    ],
  ])('response_format %j gives a JSON object', async (responseFormat, check) => {
    const res = await client.chat.completions.create({
      model: 'gpt-4o',
      response_format: responseFormat,
      messages: [{ role: 'user', content: 'json please' }],
    });
    check(JSON.parse(res.choices[0]?.message.content ?? 'null'));
  });

  it('signals a [[refuse]] with finish_reason content_filter', async () => {
    const res = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: '[[refuse]]' }] });
    expect(res.choices[0]?.finish_reason).toBe('content_filter');
    expect(res.choices[0]?.message.content).toBeNull();
  });

  it.each([
    ['missing', ''],
    ['bad-key', 'bad-key'],
  ])('rejects a %s key with 401 in the OpenAI error format', async (_label, key) => {
    const bad = new OpenAI({ apiKey: 'x', baseURL: `${sim.url}/v1`, maxRetries: 0, defaultHeaders: { authorization: key ? `Bearer ${key}` : null } });
    const err = await bad.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((err as InstanceType<typeof OpenAI.AuthenticationError>).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_api_key' });
  });
});

describe('OpenAI embeddings via the official client', () => {
  it('returns deterministic unit vectors (base64 by default in the client, float on request)', async () => {
    const res = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['hello world', 'other'] });
    expect(res.object).toBe('list');
    expect(res.data).toHaveLength(2);
    const v = res.data[0]?.embedding ?? [];
    expect(v).toHaveLength(1536);
    expect(Math.hypot(...v)).toBeCloseTo(1, 4);
    const again = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello world', dimensions: 64, encoding_format: 'float' });
    expect(again.data[0]?.embedding).toHaveLength(64);
    expect(res.usage.prompt_tokens).toBe(encode('hello world').length + encode('other').length);
    expect(res.data[1]?.embedding).not.toEqual(v);
    const same = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello world' });
    expect(same.data[0]?.embedding).toEqual(v);
  });
});

describe('Azure OpenAI via AzureOpenAI', () => {
  it('serves chat and embeddings on /openai/deployments/{deployment}/… with the api-key header', async () => {
    const azure = new AzureOpenAI({ endpoint: sim.url, apiKey: 'azure-key', apiVersion: '2024-10-21', deployment: 'my-gpt4o', maxRetries: 0 });
    const res = await azure.chat.completions.create({ model: '', messages: [{ role: 'user', content: 'hello azure' }] });
    expect(res.model).toBe('my-gpt4o');
    expect(res.choices[0]?.message.content).toBe('Simulated reply from my-gpt4o: hello azure');
    const emb = await new AzureOpenAI({ endpoint: sim.url, apiKey: 'azure-key', apiVersion: '2024-10-21', deployment: 'my-embed', maxRetries: 0 }).embeddings.create({
      model: '',
      input: 'x',
    });
    expect(emb.data[0]?.embedding.length).toBeGreaterThan(0);
    expect(sim.stats().byModel['my-gpt4o']).toBeGreaterThanOrEqual(1);
  });

  it('requires the api-key header and api-version', async () => {
    const url = `${sim.url}/openai/deployments/d1/chat/completions`;
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] });
    const noKey = await fetch(`${url}?api-version=2024-10-21`, { method: 'POST', body, headers: { authorization: 'Bearer k' } });
    expect(noKey.status).toBe(401);
    const noVersion = await fetch(url, { method: 'POST', body, headers: { 'api-key': 'k' } });
    expect(noVersion.status).toBe(400);
  });
});

describe('HTTP edge cases', () => {
  it.each([
    ['unknown path', '/v2/whatever', 'POST', '{}', 404],
    ['GET on a POST route', '/v1/chat/completions', 'GET', undefined, 404],
    ['bad JSON', '/v1/chat/completions', 'POST', '{not json', 400],
    ['missing model', '/v1/chat/completions', 'POST', '{"messages":[{"role":"user","content":"x"}]}', 400],
  ])('%s -> %i in the OpenAI error format', async (_label, path, method, body, status) => {
    const res = await fetch(`${sim.url}${path}`, { method, body, headers: { authorization: 'Bearer k', 'content-type': 'application/json' } });
    expect(res.status).toBe(status);
    const json = (await res.json()) as { error?: { message?: unknown; type?: unknown } };
    expect(typeof json.error?.message).toBe('string');
    expect(typeof json.error?.type).toBe('string');
  });

  it('answers JSON with content-length and keeps the connection alive', async () => {
    const res = await fetch(`${sim.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: 'Bearer k' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] }),
    });
    const text = await res.text();
    expect(res.headers.get('content-length')).toBe(String(Buffer.byteLength(text)));
    expect(res.headers.get('connection')).toBe('keep-alive');
  });
});
