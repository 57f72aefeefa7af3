import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { LONG_REPLY_TOKENS, countPromptTokens, countTokens, startSimulator, type Simulator, type SimulatorBill } from './index.js';

let sim: Simulator;
let openai: OpenAI;
let anthropic: Anthropic;
let gemini: GoogleGenAI;

beforeAll(async () => {
  sim = await startSimulator();
  openai = new OpenAI({ apiKey: 'k', baseURL: `${sim.url}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'k', baseURL: sim.url, maxRetries: 0 });
  gemini = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: sim.url } });
});
afterAll(async () => {
  await sim.close();
});
beforeEach(() => sim.resetBill());
afterEach(async () => {
  await vi.waitFor(() => expect(sim.stats().openRequests).toBe(0), { timeout: 2000, interval: 10 });
});

async function httpBill(s: Simulator = sim): Promise<SimulatorBill> {
  const res = await fetch(`${s.url}/_simulator/bill`);
  expect(res.status).toBe(200);
  return (await res.json()) as SimulatorBill;
}

const line = (requests: number, input: number, output: number, parts: { cached?: number; written?: number; reasoning?: number } = {}) => ({
  requests,
  input_tokens: input,
  output_tokens: output,
  cached_input_tokens: parts.cached ?? 0,
  cache_write_input_tokens: parts.written ?? 0,
  reasoning_tokens: parts.reasoning ?? 0,
});

interface Reported {
  input: number;
  output: number;
}
// -1 when a response lacks its usage, so that the comparison fails.
const fromOpenAI = (u: OpenAI.CompletionUsage | undefined): Reported => ({ input: u?.prompt_tokens ?? -1, output: u?.completion_tokens ?? -1 });
const fromGemini = (r: { usageMetadata?: { promptTokenCount?: number; candidatesTokenCount?: number } } | undefined): Reported => ({
  input: r?.usageMetadata?.promptTokenCount ?? -1,
  output: r?.usageMetadata?.candidatesTokenCount ?? -1,
});

/** The whole bill, over HTTP and from `sim.bill()`, is one request per model at its reported usage. */
async function expectBilledOnce(reported: Record<string, Reported>): Promise<void> {
  const models = Object.fromEntries(Object.entries(reported).map(([m, u]) => [m, line(1, u.input, u.output)]));
  const total = line(0, 0, 0);
  for (const u of Object.values(reported)) {
    total.requests++;
    total.input_tokens += u.input;
    total.output_tokens += u.output;
  }
  const expected = { models, total };
  expect(await httpBill()).toEqual(expected);
  expect(sim.bill()).toEqual(expected);
}

describe('prompt-cache and reasoning markers, in each provider\'s own usage fields', () => {
  const content = 'Summarise the policy [[cached:12]] [[cache_write:5]] [[reasoning:30]] [[tokens:7]]';
  const prompt = countPromptTokens([content]);

  it('OpenAI: cached_tokens within prompt_tokens, reasoning_tokens within completion_tokens; no cache writes', async () => {
    const r = await openai.chat.completions.create({ model: 'o-sim', messages: [{ role: 'user', content }] });
    expect(r.usage).toMatchObject({ prompt_tokens: prompt, completion_tokens: 37, prompt_tokens_details: { cached_tokens: 12 }, completion_tokens_details: { reasoning_tokens: 30 } });
    const chunks = await openai.chat.completions.create({ model: 'o-sim', messages: [{ role: 'user', content }], stream: true, stream_options: { include_usage: true } });
    let streamed: OpenAI.CompletionUsage | undefined;
    for await (const c of chunks) streamed = c.usage ?? streamed;
    expect(streamed).toEqual(r.usage);
    expect(sim.bill().models['o-sim']).toEqual(line(2, 2 * prompt, 2 * 37, { cached: 24, reasoning: 60 }));
  });

  it('Anthropic: input_tokens without the cache reads and writes, reported beside it; thinking within output_tokens', async () => {
    const r = await anthropic.messages.create({ model: 'claude-sim', max_tokens: 100, messages: [{ role: 'user', content }] });
    expect(r.usage).toMatchObject({ input_tokens: prompt - 12 - 5, cache_read_input_tokens: 12, cache_creation_input_tokens: 5, output_tokens: 37 });
    const stream = anthropic.messages.stream({ model: 'claude-sim', max_tokens: 100, messages: [{ role: 'user', content }] });
    const final = await stream.finalMessage();
    expect(final.usage).toMatchObject({ input_tokens: prompt - 17, cache_read_input_tokens: 12, cache_creation_input_tokens: 5, output_tokens: 37 });
    // Billed as output; not kept apart, since Anthropic does not report it apart.
    expect(sim.bill().models['claude-sim']).toEqual(line(2, 2 * prompt, 2 * 37, { cached: 24, written: 10 }));
  });

  it('Gemini: cachedContentTokenCount within promptTokenCount, thoughtsTokenCount beside candidatesTokenCount', async () => {
    const r = await gemini.models.generateContent({ model: 'gemini-sim', contents: content });
    expect(r.usageMetadata).toMatchObject({ promptTokenCount: prompt, cachedContentTokenCount: 12, candidatesTokenCount: 7, thoughtsTokenCount: 30 });
    expect(sim.bill().models['gemini-sim']).toEqual(line(1, prompt, 37, { cached: 12, reasoning: 30 }));
  });

  it('caps the cache counts at the prompt, reads first', async () => {
    await openai.chat.completions.create({ model: 'o-cap', messages: [{ role: 'user', content: 'hi [[cached:100000]]' }] });
    const capped = countPromptTokens(['hi [[cached:100000]]']);
    expect(sim.bill().models['o-cap']).toMatchObject({ input_tokens: capped, cached_input_tokens: capped });
  });
});

const weatherSchema = { type: 'object' as const, properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city', 'days'] };
const weatherTool: OpenAI.Chat.Completions.ChatCompletionTool = { type: 'function', function: { name: 'get_weather', parameters: weatherSchema } };
const anthropicTool: Anthropic.Tool = { name: 'get_weather', input_schema: weatherSchema };

describe('a completed request bills exactly the usage it reported', () => {
  it('OpenAI chat: JSON, streamed text and streamed tool call', async () => {
    const json = await openai.chat.completions.create({ model: 'gpt-json', messages: [{ role: 'user', content: 'Hello there [[tokens:30]]' }] });
    const streamed = async (model: string, content: string): Promise<OpenAI.CompletionUsage | undefined> => {
      const stream = await openai.chat.completions.create({
        model,
        stream: true,
        stream_options: { include_usage: true },
        tools: [weatherTool],
        messages: [{ role: 'user', content }],
      });
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const chunk of stream) usage = chunk.usage ?? usage;
      return usage;
    };
    await expectBilledOnce({
      'gpt-json': fromOpenAI(json.usage),
      'gpt-stream': fromOpenAI(await streamed('gpt-stream', 'stream [[long]]')),
      'gpt-tool': fromOpenAI(await streamed('gpt-tool', 'weather? [[tool]]')),
    });
  });

  it('Azure OpenAI bills under the deployment name', async () => {
    const res = await fetch(`${sim.url}/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21`, {
      method: 'POST',
      headers: { 'api-key': 'k' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }),
    });
    const { usage } = (await res.json()) as { usage: OpenAI.CompletionUsage };
    await expectBilledOnce({ 'my-deployment': fromOpenAI(usage) });
  });

  it('Anthropic messages: JSON, streamed text and streamed tool use', async () => {
    const params = (model: string, content: string) => ({
      model,
      max_tokens: 1000,
      tools: [anthropicTool],
      messages: [{ role: 'user' as const, content }],
    });
    const json = await anthropic.messages.create(params('claude-json', 'Hello [[tokens:12]]'));
    // finalMessage() takes input_tokens from message_start and output_tokens from message_delta.
    const text = await anthropic.messages.stream(params('claude-stream', 'stream [[long]]')).finalMessage();
    const tool = await anthropic.messages.stream(params('claude-tool', 'weather? [[tool]]')).finalMessage();
    expect(tool.stop_reason).toBe('tool_use');
    await expectBilledOnce(Object.fromEntries([json, text, tool].map((m) => [m.model, { input: m.usage.input_tokens, output: m.usage.output_tokens }])));
  });

  it('Gemini: generateContent, streamed text and streamed function call', async () => {
    const json = await gemini.models.generateContent({ model: 'gemini-json', contents: 'Hello [[tokens:9]]' });
    const lastChunk = async (model: string, contents: string) => {
      const config = { tools: [{ functionDeclarations: [{ name: 'get_weather', parametersJsonSchema: weatherSchema }] }] };
      let last: Awaited<ReturnType<typeof gemini.models.generateContent>> | undefined;
      for await (const chunk of await gemini.models.generateContentStream({ model, contents, config })) last = chunk;
      return last;
    };
    const tool = await lastChunk('gemini-tool', 'weather? [[tool]]');
    expect(tool?.functionCalls?.[0]?.name).toBe('get_weather');
    await expectBilledOnce({
      'gemini-json': fromGemini(json),
      'gemini-stream': fromGemini(await lastChunk('gemini-stream', 'stream [[long]]')),
      'gemini-tool': fromGemini(tool),
    });
  });

  it('embeddings bill their input tokens only; count_tokens bills nothing', async () => {
    const o = await openai.embeddings.create({ model: 'text-embedding-3-small', input: ['first text', 'second one'] });
    await gemini.models.embedContent({ model: 'gemini-embedding-001', contents: 'embed this text' });
    await anthropic.messages.countTokens({ model: 'claude-count', messages: [{ role: 'user', content: 'count me' }] });
    await gemini.models.countTokens({ model: 'gemini-count', contents: 'count me' });
    await expectBilledOnce({
      'text-embedding-3-small': { input: o.usage.prompt_tokens, output: 0 },
      'gemini-embedding-001': { input: countTokens('embed this text'), output: 0 },
    });
  });
});

describe('disconnects and faults', () => {
  it('a non-streaming answer is billed in full even when the client left during the latency', async () => {
    const params = { model: 'gpt-slow-300', messages: [{ role: 'user' as const, content: 'patience please' }] };
    const ac = new AbortController();
    const aborted = openai.chat.completions.create(params, { signal: ac.signal }).catch((e: unknown) => e);
    setTimeout(() => ac.abort(), 50);
    expect(await aborted).toBeInstanceOf(OpenAI.APIUserAbortError);
    expect((await httpBill()).models).toEqual({}); // still "generating"
    await vi.waitFor(async () => expect((await httpBill()).total.requests).toBe(1), { timeout: 2000, interval: 20 });
    const billed = (await httpBill()).models['gpt-slow-300'];

    const delivered = await openai.chat.completions.create(params); // the same request, answered this time
    expect(billed).toEqual(line(1, delivered.usage?.prompt_tokens ?? -1, delivered.usage?.completion_tokens ?? -1));
  });

  describe('a stream whose client is gone during the time to first token bills exactly its input tokens', () => {
    const content = 'still there?';
    const messages = [{ role: 'user', content }];
    it.each([
      ['OpenAI', 'gpt-slow-300', '/v1/chat/completions', { authorization: 'Bearer k' }, { model: 'gpt-slow-300', stream: true, messages }],
      ['Anthropic', 'claude-slow-300', '/v1/messages', { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' }, { model: 'claude-slow-300', stream: true, max_tokens: 100, messages }],
      ['Gemini', 'gemini-slow-300', '/v1beta/models/gemini-slow-300:streamGenerateContent?alt=sse', { 'x-goog-api-key': 'k' }, { contents: [{ role: 'user', parts: [{ text: content }] }] }],
    ] as const)('%s', async (_provider, model, path, headers, body) => {
      const ac = new AbortController();
      const sent = fetch(`${sim.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal: ac.signal });
      setTimeout(() => ac.abort(), 50);
      await expect(sent).rejects.toThrow();
      // The prompt is processed when the latency ends, whether the client is there or not.
      await vi.waitFor(() => expect(sim.bill().total.requests).toBe(1), { timeout: 2000, interval: 10 });
      expect(sim.bill().models[model]).toEqual(line(1, countPromptTokens([content]), 0));
    });
  });

  describe('a stream cancelled by the client bills its input and only the chunks sent', () => {
    let slow: Simulator;
    beforeAll(async () => {
      slow = await startSimulator({ streamChunkDelayMs: 5 });
    });
    afterAll(async () => {
      await slow.close();
    });
    const content = 'cut me short [[long]]';

    /** After the client has gone, nothing more is billed: read the bill once the request closed. */
    async function billAfterClose(model: string): Promise<unknown> {
      await vi.waitFor(() => expect(slow.stats().openRequests).toBe(0), { timeout: 2000, interval: 5 });
      return (await httpBill(slow)).models[model];
    }

    it('OpenAI', async () => {
      const client = new OpenAI({ apiKey: 'k', baseURL: `${slow.url}/v1`, maxRetries: 0 });
      const stream = await client.chat.completions.create({ model: 'gpt-cut', stream: true, messages: [{ role: 'user', content }] });
      let chunks = 0;
      for await (const _ of stream) if (++chunks === 5) break; // the role chunk, then pieces of 1, 2, 3 and 4 tokens
      const billed = await billAfterClose('gpt-cut');
      expect(billed).toEqual(line(1, countPromptTokens([content]), expect.any(Number) as number));
      const output = (billed as { output_tokens: number }).output_tokens;
      expect(output).toBeGreaterThanOrEqual(1 + 2 + 3 + 4);
      expect(output).toBeLessThan(LONG_REPLY_TOKENS);
    });

    it('Anthropic', async () => {
      const client = new Anthropic({ apiKey: 'k', baseURL: slow.url, maxRetries: 0 });
      const stream = client.messages.stream({ model: 'claude-cut', max_tokens: 1000, messages: [{ role: 'user', content }] });
      let deltas = 0;
      stream.on('streamEvent', (ev) => {
        if (ev.type === 'content_block_delta' && ++deltas === 4) stream.abort();
      });
      await expect(stream.done()).rejects.toThrow();
      const billed = await billAfterClose('claude-cut');
      expect(billed).toEqual(line(1, countPromptTokens([content]), expect.any(Number) as number));
      const output = (billed as { output_tokens: number }).output_tokens;
      expect(output).toBeGreaterThanOrEqual(1 + 2 + 3 + 4);
      expect(output).toBeLessThan(LONG_REPLY_TOKENS);
    });
  });

  it('-dropmid bills what was sent before the drop', async () => {
    const content = 'drop me [[long]]';
    const stream = await openai.chat.completions.create({ model: 'gpt-dropmid', stream: true, messages: [{ role: 'user', content }] });
    await expect((async () => {
      for await (const _ of stream);
    })()).rejects.toThrow();
    // Three events went out: the role chunk (no tokens), then pieces of 1 and 2 tokens.
    await expectBilledOnce({ 'gpt-dropmid': { input: countPromptTokens([content]), output: 3 } });
  });

  it('error replies, -hang and -drop bill nothing', async () => {
    await expect(openai.chat.completions.create({ model: 'gpt-fail-503', messages: [{ role: 'user', content: 'x' }] })).rejects.toThrow();
    await expect(anthropic.messages.create({ model: 'claude-fail-429', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] })).rejects.toThrow();
    await expect(gemini.models.generateContent({ model: 'gemini-fail-500', contents: 'x' })).rejects.toThrow();
    await expect(openai.chat.completions.create({ model: 'gpt-drop', messages: [{ role: 'user', content: 'x' }] })).rejects.toThrow();
    await expect(openai.chat.completions.create({ model: 'gpt-hang', messages: [{ role: 'user', content: 'x' }] }, { timeout: 100 })).rejects.toThrow();
    await vi.waitFor(() => expect(sim.stats().openRequests).toBe(0), { timeout: 2000, interval: 5 });
    expect(await httpBill()).toEqual({ models: {}, total: line(0, 0, 0) });
  });
});

describe('HTTP API', () => {
  it('DELETE /_simulator/bill empties the bill', async () => {
    await openai.chat.completions.create({ model: 'gpt-a', messages: [{ role: 'user', content: 'x' }] });
    expect((await httpBill()).total.requests).toBe(1);
    const res = await fetch(`${sim.url}/_simulator/bill`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    const empty = { models: {}, total: line(0, 0, 0) };
    expect(await res.json()).toEqual(empty);
    expect(await httpBill()).toEqual(empty);
    expect(sim.bill()).toEqual(empty);
  });

  it('resetStats leaves the bill alone', async () => {
    await openai.chat.completions.create({ model: 'gpt-b', messages: [{ role: 'user', content: 'x' }] });
    sim.resetStats();
    expect(sim.bill().models['gpt-b']?.requests).toBe(1);
  });
});
