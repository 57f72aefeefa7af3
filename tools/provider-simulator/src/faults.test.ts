import Anthropic from '@anthropic-ai/sdk';
import { ApiError, GoogleGenAI } from '@google/genai';
import { request } from 'node:http';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { faultsFromModelName, planFaults } from './faults.js';
import { startSimulator, type FaultSpec, type Simulator } from './index.js';

let sim: Simulator;
let openai: OpenAI;
let anthropic: Anthropic;
let gemini: GoogleGenAI;

beforeAll(async () => {
  sim = await startSimulator({ faults: { 'explicit-model': { kind: 'status', status: 503, retryAfterS: 7 }, 'explicit-dropmid': { kind: 'drop-mid-stream', afterChunks: 5 } } });
  openai = new OpenAI({ apiKey: 'k', baseURL: `${sim.url}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'k', baseURL: sim.url, maxRetries: 0 });
  gemini = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: sim.url } });
});
afterAll(async () => {
  await sim.close();
});
afterEach(async () => {
  // Every test must leave no upstream request open.
  await vi.waitFor(() => expect(sim.stats().openRequests).toBe(0), { timeout: 2000, interval: 10 });
});

const chat = (model: string, content = 'hi'): Promise<unknown> =>
  openai.chat.completions.create({ model, messages: [{ role: 'user', content }] });

const postOpenAI = (model: string): Promise<Response> =>
  fetch(`${sim.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: 'Bearer k' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
  });

describe('fault conventions (pure)', () => {
  it.each([
    ['gpt-4o', []],
    ['gpt-4o-fail-500', [{ kind: 'status', status: 500 }]],
    ['claude-fail-429', [{ kind: 'status', status: 429 }]],
    ['m-hang', [{ kind: 'hang' }]],
    ['m-drop', [{ kind: 'drop' }]],
    ['m-dropmid', [{ kind: 'drop-mid-stream', afterChunks: 3 }]],
    ['m-slow-250', [{ kind: 'latency', ms: 250 }]],
    ['m-slow-100-fail-503', [{ kind: 'latency', ms: 100 }, { kind: 'status', status: 503 }]],
    ['m-slow-500-every-10', [{ kind: 'latency', ms: 500, every: 10 }]],
    ['m-slow-500-every-4-fail-503', [{ kind: 'latency', ms: 500, every: 4 }, { kind: 'status', status: 503 }]],
    ['m-hangar', []],
  ])('%s -> %j', (model, expected) => {
    expect(faultsFromModelName(model)).toEqual(expected);
  });

  it('explicit faults win over the name convention', () => {
    expect(planFaults('m-fail-500', { 'm-fail-500': { kind: 'hang' } })).toEqual({ extraLatencyMs: 0, fault: { kind: 'hang' } });
    expect(planFaults('m-slow-20-drop', undefined)).toEqual({ extraLatencyMs: 20, fault: { kind: 'drop' } });
  });

  it('a latency with every hits the every-th, 2·every-th, … request of the model only', () => {
    const slowOnes = (model: string, faults?: Record<string, FaultSpec>) =>
      Array.from({ length: 30 }, (_, i) => i + 1).filter((nth) => planFaults(model, faults, nth).extraLatencyMs > 0);
    expect(slowOnes('m-slow-500-every-10')).toEqual([10, 20, 30]);
    expect(slowOnes('x', { x: { kind: 'latency', ms: 500, every: 7 } })).toEqual([7, 14, 21, 28]);
    expect(planFaults('m-slow-500-every-10', undefined, 20)).toEqual({ extraLatencyMs: 500 });
    expect(slowOnes('m-slow-500')).toHaveLength(30);
  });
});

describe('status faults', () => {
  it('-fail-500 gives 500 in each provider format', async () => {
    const o = await chat('gpt-4o-fail-500').catch((e: unknown) => e);
    expect(o).toBeInstanceOf(OpenAI.InternalServerError);
    expect((o as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ type: 'server_error' });

    const a = await anthropic.messages.create({ model: 'claude-fail-500', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(a).toBeInstanceOf(Anthropic.InternalServerError);
    expect((a as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'api_error' } });

    const g = await gemini.models.generateContent({ model: 'gemini-fail-503', contents: 'x' }).catch((e: unknown) => e);
    expect(g).toBeInstanceOf(ApiError);
    expect((g as ApiError).status).toBe(503);
    expect((g as ApiError).message).toContain('UNAVAILABLE');
  });

  it('-fail-429 carries retry-after (and retry-after-ms for OpenAI)', async () => {
    const o = await postOpenAI('gpt-4o-fail-429');
    expect(o.status).toBe(429);
    expect(o.headers.get('retry-after')).toBe('1');
    expect(o.headers.get('retry-after-ms')).toBe('1000');
    expect(await o.json()).toMatchObject({ error: { code: 'rate_limit_exceeded' } });

    const err = await anthropic.messages.create({ model: 'claude-fail-429', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    const headers = (err as InstanceType<typeof Anthropic.APIError>).headers;
    expect(headers?.get('retry-after')).toBe('1');
    expect(headers?.get('retry-after-ms')).toBeNull();
  });

  it('explicit opts.faults win and can set retry-after on any status', async () => {
    const res = await postOpenAI('explicit-model');
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('7');
    await res.text();
  });
});

describe('hang / drop faults', () => {
  it('-hang never answers; aborting the caller closes the upstream request', async () => {
    const ac = new AbortController();
    const pending = openai.chat.completions.create({ model: 'gpt-4o-hang', messages: [{ role: 'user', content: 'x' }] }, { signal: ac.signal });
    const settled = pending.catch((e: unknown) => e);
    await vi.waitFor(() => expect(sim.stats().openRequests).toBe(1), { timeout: 2000, interval: 5 });
    await new Promise((r) => setTimeout(r, 50));
    expect(sim.stats().openRequests).toBe(1); // still hanging
    ac.abort();
    expect(await settled).toBeInstanceOf(OpenAI.APIUserAbortError);
    await vi.waitFor(() => expect(sim.stats().openRequests).toBe(0), { timeout: 2000, interval: 5 });
  });

  it('-hang with a client timeout also leaves nothing open', async () => {
    const err = await anthropic.messages
      .create({ model: 'claude-hang', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }, { timeout: 100 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.APIConnectionTimeoutError);
  });

  it.each(['gpt-4o-drop', 'gpt-4o-dropmid'])('%s destroys the socket of a non-streaming request', async (model) => {
    const err = await chat(model).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIConnectionError);
  });

  it('-drop also fails Gemini and Anthropic callers with a connection error', async () => {
    await expect(gemini.models.generateContent({ model: 'gemini-drop', contents: 'x' })).rejects.toThrow();
    const a = await anthropic.messages.create({ model: 'claude-drop', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(a).toBeInstanceOf(Anthropic.APIConnectionError);
  });

  it('server close() ends hung requests', async () => {
    const own = await startSimulator();
    const pending = fetch(`${own.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: 'Bearer k' },
      body: JSON.stringify({ model: 'm-hang', messages: [{ role: 'user', content: 'x' }] }),
    }).catch((e: unknown) => e);
    await vi.waitFor(() => expect(own.stats().openRequests).toBe(1), { timeout: 2000, interval: 5 });
    await own.close();
    expect(await pending).toBeInstanceOf(Error);
    expect(own.stats().openRequests).toBe(0);
  });
});

describe('drop-mid-stream', () => {
  it('OpenAI stream: partial content, then an error, never [DONE]', async () => {
    const stream = await openai.chat.completions.create({ model: 'gpt-4o-dropmid', stream: true, messages: [{ role: 'user', content: '[[long]]' }] });
    let text = '';
    const err = await (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(text.length).toBeGreaterThan(0);
    expect(text.length).toBeLessThan(100);
  });

  it('Anthropic stream: partial events then an error', async () => {
    const stream = anthropic.messages.stream({ model: 'claude-dropmid', max_tokens: 1000, messages: [{ role: 'user', content: '[[long]]' }] });
    const events: string[] = [];
    stream.on('streamEvent', (ev) => events.push(ev.type));
    await expect(stream.finalMessage()).rejects.toThrow();
    expect(events).toContain('message_start');
    expect(events).not.toContain('message_stop');
  });

  it('Gemini stream: partial chunks then an error; explicit afterChunks is honoured', async () => {
    const collect = async (model: string): Promise<{ chunks: number; err: unknown }> => {
      let chunks = 0;
      const err = await (async () => {
        const stream = await gemini.models.generateContentStream({ model, contents: '[[long]]' });
        for await (const _ of stream) chunks++;
      })().catch((e: unknown) => e);
      return { chunks, err };
    };
    const byName = await collect('gemini-dropmid');
    expect(byName.err).toBeInstanceOf(Error);
    expect(byName.chunks).toBe(3);
    const explicit = await collect('explicit-dropmid');
    expect(explicit.err).toBeInstanceOf(Error);
    expect(explicit.chunks).toBe(5);
  });

  it('short streams are still cut before the final event', async () => {
    const res = await fetch(`${sim.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: 'Bearer k' },
      body: JSON.stringify({ model: 'x-dropmid', stream: true, messages: [{ role: 'user', content: '[[tokens:1]]' }] }),
    });
    const err = await res.text().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
  });
});

describe('latency, stats and backpressure', () => {
  it('-slow-NNN and latencyMs delay the first byte', async () => {
    const t0 = performance.now();
    await chat('gpt-4o-slow-150');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);

    const slow = await startSimulator({ latencyMs: 100, streamChunkDelayMs: 10 });
    try {
      const client = new OpenAI({ apiKey: 'k', baseURL: `${slow.url}/v1`, maxRetries: 0 });
      const t1 = performance.now();
      const stream = await client.chat.completions.create({ model: 'm', stream: true, messages: [{ role: 'user', content: '[[tokens:20]]' }] });
      let chunks = 0;
      for await (const _ of stream) chunks++;
      // 100 ms base latency + (chunks - 1) * 10 ms between events.
      expect(performance.now() - t1).toBeGreaterThanOrEqual(100 + (chunks - 1) * 10 - 10);
    } finally {
      await slow.close();
    }
  });

  it('-slow-NNN-every-K delays the K-th, 2K-th, … request of that model, counted apart from other models', async () => {
    const own = await startSimulator();
    try {
      const timed = async (model: string): Promise<number> => {
        const t0 = performance.now();
        const res = await fetch(`${own.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: 'Bearer k' },
          body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
        });
        expect(res.status).toBe(200);
        await res.json();
        return performance.now() - t0;
      };
      const flaky = 'm-slow-500-every-10';
      const sent: Promise<number>[] = [];
      for (let n = 1; n <= 100; n++) {
        // Each request leaves once the one before has arrived, so the n-th sent is the model's n-th;
        // the slow ones wait side by side, and a request of another model comes between each two.
        sent.push(timed(flaky));
        await vi.waitFor(() => expect(own.stats().byModel[flaky]).toBe(n), { timeout: 2000, interval: 1 });
        await timed('m');
      }
      const slow = (await Promise.all(sent)).flatMap((ms, i) => (ms >= 490 ? [i + 1] : []));
      expect(slow).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    } finally {
      await own.close();
    }
  });

  it('counts requests per model; resetStats clears totals', async () => {
    const own = await startSimulator();
    try {
      const client = new OpenAI({ apiKey: 'k', baseURL: `${own.url}/v1`, maxRetries: 0 });
      await client.chat.completions.create({ model: 'a', messages: [{ role: 'user', content: 'x' }] });
      await client.chat.completions.create({ model: 'a', messages: [{ role: 'user', content: 'x' }] });
      await client.embeddings.create({ model: 'b', input: 'x' });
      expect(own.stats()).toEqual({ totalRequests: 3, openRequests: 0, byModel: { a: 2, b: 1 } });
      own.resetStats();
      expect(own.stats()).toEqual({ totalRequests: 0, openRequests: 0, byModel: {} });
    } finally {
      await own.close();
    }
  });

  it('a slow reader of a large stream still receives every event (write/drain backpressure)', async () => {
    const body = JSON.stringify({ model: 'big', stream: true, messages: [{ role: 'user', content: '[[tokens:20000]]' }] });
    const url = new URL(`${sim.url}/v1/chat/completions`);
    const text = await new Promise<string>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { authorization: 'Bearer k', 'content-length': Buffer.byteLength(body) } }, (res) => {
        res.pause();
        const parts: Buffer[] = [];
        setTimeout(() => {
          res.on('data', (c: Buffer) => parts.push(c));
          res.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
          res.resume();
        }, 200);
      });
      req.on('error', reject);
      req.end(body);
    });
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    const frames = text.split('\n\n').filter((f) => f.startsWith('data: {'));
    expect(frames.length).toBeGreaterThan(5000);
  });
});
