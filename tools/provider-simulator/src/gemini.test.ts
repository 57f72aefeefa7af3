import { ApiError, FinishReason, GoogleGenAI, Type } from '@google/genai';
import { encode } from 'gpt-tokenizer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PER_MESSAGE_TOKEN_OVERHEAD, REPLY_PRIMING_TOKENS, startSimulator, type Simulator } from './index.js';

let sim: Simulator;
let ai: GoogleGenAI;

beforeAll(async () => {
  sim = await startSimulator();
  ai = new GoogleGenAI({ apiKey: 'test-key', httpOptions: { baseUrl: sim.url } });
});
afterAll(async () => {
  await sim.close();
});

describe('Gemini via @google/genai', () => {
  it('generateContent returns candidates and usageMetadata', async () => {
    const res = await ai.models.generateContent({
      model: 'gemini-2.5-flash',
      contents: 'Hello gemini world',
      config: { systemInstruction: 'Be brief.' },
    });
    expect(res.text).toBe('Simulated reply from gemini-2.5-flash: Hello gemini world');
    expect(res.candidates?.[0]?.finishReason).toBe(FinishReason.STOP);
    expect(res.candidates?.[0]?.content?.role).toBe('model');
    const prompt = REPLY_PRIMING_TOKENS + encode('Be brief.').length + encode('Hello gemini world').length + 2 * PER_MESSAGE_TOKEN_OVERHEAD;
    const out = encode('Simulated reply from gemini-2.5-flash: Hello gemini world').length;
    expect(res.usageMetadata).toMatchObject({ promptTokenCount: prompt, candidatesTokenCount: out, totalTokenCount: prompt + out });
    expect(sim.stats().byModel['gemini-2.5-flash']).toBe(1);
  });

  it('maxOutputTokens truncates with finishReason MAX_TOKENS', async () => {
    const res = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'long answer', config: { maxOutputTokens: 2 } });
    expect(res.candidates?.[0]?.finishReason).toBe(FinishReason.MAX_TOKENS);
    expect(res.usageMetadata?.candidatesTokenCount).toBe(2);
  });

  it('generateContentStream streams several chunks; the last has finishReason and full usage', async () => {
    const stream = await ai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'stream [[tokens:25]]' });
    let text = '';
    let chunks = 0;
    let last: Awaited<ReturnType<typeof ai.models.generateContent>> | undefined;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.text ?? '';
      expect(chunk.usageMetadata?.promptTokenCount).toBeGreaterThan(0);
      last = chunk;
    }
    expect(chunks).toBeGreaterThan(5);
    expect(encode(text).length).toBe(25);
    expect(last?.candidates?.[0]?.finishReason).toBe(FinishReason.STOP);
    expect(last?.usageMetadata?.candidatesTokenCount).toBe(25);
  });

  it('returns a functionCall part for [[tool]]', async () => {
    const res = await ai.models.generateContent({
      model: 'gemini-2.5-flash',
      contents: 'weather? [[tool]]',
      config: {
        tools: [
          {
            functionDeclarations: [
              {
                name: 'get_weather',
                parameters: { type: Type.OBJECT, properties: { city: { type: Type.STRING }, days: { type: Type.INTEGER } }, required: ['city', 'days'] },
              },
            ],
          },
        ],
      },
    });
    expect(res.functionCalls).toEqual([{ name: 'get_weather', args: { city: 'example', days: 1 } }]);
    expect(res.candidates?.[0]?.finishReason).toBe(FinishReason.STOP);
  });

  it('JSON mode with responseSchema returns a matching object', async () => {
    const res = await ai.models.generateContent({
      model: 'gemini-2.5-flash',
      contents: 'json',
      config: { responseMimeType: 'application/json', responseSchema: { type: Type.OBJECT, properties: { ok: { type: Type.BOOLEAN } }, required: ['ok'] } },
    });
    expect(JSON.parse(res.text ?? 'null')).toEqual({ ok: true });
  });

  it('[[refuse]] gives finishReason SAFETY with safetyRatings and no content (JSON and stream)', async () => {
    const res = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: '[[refuse]]' });
    const cand = res.candidates?.[0];
    expect(cand?.finishReason).toBe(FinishReason.SAFETY);
    expect(cand?.content).toBeUndefined();
    expect(cand?.safetyRatings?.some((r) => r.blocked === true)).toBe(true);
    expect(res.text).toBeUndefined();
    const stream = await ai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: '[[refuse]]' });
    const reasons: unknown[] = [];
    for await (const chunk of stream) reasons.push(chunk.candidates?.[0]?.finishReason);
    expect(reasons).toEqual([FinishReason.SAFETY]);
  });

  it('embedContent (served by :batchEmbedContents) returns deterministic vectors', async () => {
    const res = await ai.models.embedContent({ model: 'text-embedding-004', contents: ['hello', 'world'], config: { outputDimensionality: 32 } });
    expect(res.embeddings).toHaveLength(2);
    expect(res.embeddings?.[0]?.values).toHaveLength(32);
    const again = await ai.models.embedContent({ model: 'text-embedding-004', contents: 'hello', config: { outputDimensionality: 32 } });
    expect(again.embeddings?.[0]?.values).toEqual(res.embeddings?.[0]?.values);
  });

  it('serves the single :embedContent REST method', async () => {
    const res = await fetch(`${sim.url}/v1beta/models/text-embedding-004:embedContent`, {
      method: 'POST',
      headers: { 'x-goog-api-key': 'k', 'content-type': 'application/json' },
      body: JSON.stringify({ content: { parts: [{ text: 'hello' }] } }),
    });
    expect(res.status).toBe(200);
    const json = (await res.json()) as { embedding: { values: number[] } };
    expect(json.embedding.values).toHaveLength(768);
  });

  it('countTokens matches promptTokenCount', async () => {
    const counted = await ai.models.countTokens({ model: 'gemini-2.5-flash', contents: 'count these words' });
    const res = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'count these words' });
    expect(counted.totalTokens).toBe(res.usageMetadata?.promptTokenCount);
  });

  it('rejects a key in the URL with 400 and a missing or bad key with 401', async () => {
    const url = `${sim.url}/v1beta/models/gemini-2.5-flash:generateContent`;
    const body = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'x' }] }] });
    const inUrl = await fetch(`${url}?key=secret`, { method: 'POST', body, headers: { 'x-goog-api-key': 'k' } });
    expect(inUrl.status).toBe(400);
    expect(await inUrl.json()).toMatchObject({ error: { code: 400, status: 'INVALID_ARGUMENT' } });
    const missing = await fetch(url, { method: 'POST', body });
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({ error: { code: 401, status: 'UNAUTHENTICATED' } });

    const bad = new GoogleGenAI({ apiKey: 'bad-key', httpOptions: { baseUrl: sim.url } });
    const err = await bad.models.generateContent({ model: 'gemini-2.5-flash', contents: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(401);
  });
});
