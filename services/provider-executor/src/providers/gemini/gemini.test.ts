import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FinishReason, Role } from '@llmgw/proto/v1';
import { describe, expect, it } from 'vitest';
import { decodeSse, fixture, params, user } from '../../test-helpers.js';
import { classifyGeminiError } from './errors.js';
import { createGeminiAdapter } from './index.js';
import { toGeminiBatchEmbedRequest, toGeminiRequest } from './request.js';
import { fromGeminiBatchEmbedResponse, fromGeminiResponse, geminiUsage } from './response.js';
import { GeminiStreamDecoder } from './stream.js';

const lights = { name: 'set_light_values', description: 'Sets lights', parameters: { type: 'object', properties: { brightness: { type: 'integer' } } } };

describe('toGeminiRequest', () => {
  it('maps system, contents/parts, function calls and responses, and generation config', () => {
    const body = toGeminiRequest(
      params({
        messages: [
          { role: Role.ROLE_SYSTEM, content: 'You are a lighting assistant.', name: '', toolCalls: [], toolCallId: '' },
          user('Dim the lights'),
          { role: Role.ROLE_ASSISTANT, content: '', name: '', toolCalls: [{ id: 'call_0', name: 'set_light_values', argumentsJson: '{"brightness":25}' }], toolCallId: '' },
          { role: Role.ROLE_TOOL, content: '{"ok":true}', name: '', toolCalls: [], toolCallId: 'call_0' },
        ],
        maxTokens: 200,
        temperature: 0.1,
        topP: 0.95,
        stop: ['STOP'],
        responseFormat: { type: 'json_schema', name: 'x', schema: { type: 'object' } },
        tools: [lights],
        toolChoice: { type: 'tool', name: 'set_light_values' },
      }),
    );
    expect(body).toEqual({
      contents: [
        { role: 'user', parts: [{ text: 'Dim the lights' }] },
        { role: 'model', parts: [{ functionCall: { name: 'set_light_values', args: { brightness: 25 } } }] },
        { role: 'user', parts: [{ functionResponse: { name: 'set_light_values', response: { ok: true } } }] },
      ],
      systemInstruction: { parts: [{ text: 'You are a lighting assistant.' }] },
      generationConfig: {
        maxOutputTokens: 200,
        temperature: 0.1,
        topP: 0.95,
        stopSequences: ['STOP'],
        responseMimeType: 'application/json',
        responseJsonSchema: { type: 'object' },
      },
      tools: [{ functionDeclarations: [{ name: 'set_light_values', description: 'Sets lights', parametersJsonSchema: lights.parameters }] }],
      toolConfig: { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['set_light_values'] } },
    });
  });

  it.each([
    [{ type: 'auto' } as const, 'AUTO'],
    [{ type: 'none' } as const, 'NONE'],
    [{ type: 'required' } as const, 'ANY'],
  ])('maps tool_choice %j to mode %s', (choice, mode) => {
    expect(toGeminiRequest(params({ tools: [lights], toolChoice: choice })).toolConfig).toEqual({ functionCallingConfig: { mode } });
  });

  it('builds batchEmbedContents', () => {
    expect(toGeminiBatchEmbedRequest('text-embedding-004', ['a'], 256)).toEqual({
      requests: [{ model: 'models/text-embedding-004', content: { parts: [{ text: 'a' }] }, outputDimensionality: 256 }],
    });
  });
});

describe('fromGeminiResponse', () => {
  it('maps the documented answer; thinking tokens count as output', () => {
    expect(fromGeminiResponse(JSON.parse(fixture('gemini', 'chat-basic.response.json')))).toEqual({
      content: 'AI learns patterns from data to make predictions.',
      toolCalls: [],
      finishReason: FinishReason.FINISH_REASON_STOP,
      usage: { inputTokens: 8, outputTokens: 37, cachedInputTokens: undefined, reasoningTokens: 25 },
      model: 'gemini-2.5-flash',
    });
  });

  it('maps a function call (finishReason STOP with a call → TOOL_CALLS)', () => {
    const r = fromGeminiResponse(JSON.parse(fixture('gemini', 'chat-tools.response.json')));
    expect(r?.finishReason).toBe(FinishReason.FINISH_REASON_TOOL_CALLS);
    expect(r?.toolCalls).toEqual([{ id: 'call_0', name: 'set_light_values', argumentsJson: '{"brightness":25,"color_temp":"warm"}' }]);
  });

  it('maps finishReason SAFETY and a blocked prompt to CONTENT_FILTER', () => {
    expect(fromGeminiResponse(JSON.parse(fixture('gemini', 'chat-safety.response.json')))).toEqual({
      content: '',
      toolCalls: [],
      finishReason: FinishReason.FINISH_REASON_CONTENT_FILTER,
      usage: { inputTokens: 9, outputTokens: 0 },
    });
    expect(fromGeminiResponse({ promptFeedback: { blockReason: 'SAFETY' } })?.finishReason).toBe(FinishReason.FINISH_REASON_CONTENT_FILTER);
  });

  it.each([
    ['MAX_TOKENS', FinishReason.FINISH_REASON_LENGTH],
    ['RECITATION', FinishReason.FINISH_REASON_CONTENT_FILTER],
    ['PROHIBITED_CONTENT', FinishReason.FINISH_REASON_CONTENT_FILTER],
    ['STOP', FinishReason.FINISH_REASON_STOP],
  ])('maps finishReason %s', (reason, expected) => {
    expect(fromGeminiResponse({ candidates: [{ content: { parts: [{ text: 'x' }] }, finishReason: reason }] })?.finishReason).toBe(expected);
  });

  it('reads batch embeddings', () => {
    expect(fromGeminiBatchEmbedResponse({ embeddings: [{ values: [1, 2] }] }, 1)).toEqual([[1, 2]]);
    expect(fromGeminiBatchEmbedResponse({ embeddings: [] }, 1)).toBeUndefined();
  });
});

describe('geminiUsage', () => {
  it('reads cachedContentTokenCount as a part of the prompt and thoughtsTokenCount as the reasoning part of the output', () => {
    expect(geminiUsage({ promptTokenCount: 1200, cachedContentTokenCount: 1024, candidatesTokenCount: 40, thoughtsTokenCount: 300 })).toEqual({
      inputTokens: 1200,
      cachedInputTokens: 1024,
      outputTokens: 340,
      reasoningTokens: 300,
    });
  });
});

describe('GeminiStreamDecoder', () => {
  it('decodes a CRLF alt=sse stream with running usage', () => {
    const d = new GeminiStreamDecoder('ge');
    expect(decodeSse(fixture('gemini', 'stream-basic.sse'), d, 5)).toEqual([
      { content: 'The', usage: { inputTokens: 7, outputTokens: 1 } },
      { content: ' sky is blue.', usage: { inputTokens: 7, outputTokens: 5 } },
      { finishReason: FinishReason.FINISH_REASON_STOP, usage: { inputTokens: 7, outputTokens: 6 } },
    ]);
    expect(d.done).toBe(true);
  });
});

describe('classifyGeminiError', () => {
  const body = (code: number, status: string, message: string, reason?: string) =>
    JSON.stringify({ error: { code, message, status, details: reason ? [{ reason }] : [] } });
  it.each([
    [400, 'INVALID_ARGUMENT', 'Invalid JSON payload', undefined, 'invalid_request'],
    [400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.', 'API_KEY_INVALID', 'auth_config'],
    [403, 'PERMISSION_DENIED', 'denied', undefined, 'auth_config'],
    [404, 'NOT_FOUND', 'model not found', undefined, 'invalid_request'],
    [429, 'RESOURCE_EXHAUSTED', 'quota', undefined, 'http_429'],
    [500, 'INTERNAL', 'internal', undefined, 'http_5xx'],
    [503, 'UNAVAILABLE', 'overloaded', undefined, 'http_5xx'],
    [504, 'DEADLINE_EXCEEDED', 'deadline', undefined, 'http_5xx'],
  ])('%i %s → %s', (status, grpcStatus, message, reason, expected) => {
    expect(classifyGeminiError('ge', status, body(status, grpcStatus, message, reason), {}).reason).toBe(expected);
  });
});

describe('Gemini adapter on the wire', () => {
  it('sends the key in x-goog-api-key, never in the URL', async () => {
    const seen: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
    const server = createServer((req, res) => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(fixture('gemini', 'chat-basic.response.json'));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const adapter = createGeminiAdapter({
      id: 'ge',
      baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      apiKey: 'secret-gemini-key',
      timeoutMs: 5_000,
      maxConnections: 2,
    });
    try {
      const r = await adapter.chat({ upstreamModel: 'gemini-2.5-flash', params: params(), signal: new AbortController().signal });
      expect(r.content).toContain('AI learns');
      expect(seen[0]?.url).toBe('/v1beta/models/gemini-2.5-flash:generateContent');
      expect(seen[0]?.url).not.toContain('key=');
      expect(seen[0]?.headers['x-goog-api-key']).toBe('secret-gemini-key');
    } finally {
      await adapter.close();
      await new Promise((r) => server.close(r));
    }
  });
});
