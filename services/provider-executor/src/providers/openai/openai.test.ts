import { FinishReason, Role } from '@llmgw/proto/v1';
import { describe, expect, it } from 'vitest';
import { decodeSse, fixture, params, user } from '../../test-helpers.js';
import { classifyOpenAIError } from './errors.js';
import { toOpenAIEmbeddingRequest, toOpenAIRequest } from './request.js';
import { fromOpenAIEmbeddingResponse, fromOpenAIResponse } from './response.js';
import { OpenAIStreamDecoder } from './stream.js';

const weather = { name: 'get_weather', description: 'Get weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } };

describe('toOpenAIRequest', () => {
  it('maps every parameter', () => {
    const body = toOpenAIRequest(
      params({
        messages: [
          { role: Role.ROLE_SYSTEM, content: 'sys', name: '', toolCalls: [], toolCallId: '' },
          user('weather?'),
          { role: Role.ROLE_ASSISTANT, content: '', name: '', toolCalls: [{ id: 'call_1', name: 'get_weather', argumentsJson: '{"city":"Paris"}' }], toolCallId: '' },
          { role: Role.ROLE_TOOL, content: '{"t":21}', name: '', toolCalls: [], toolCallId: 'call_1' },
        ],
        maxTokens: 300,
        temperature: 0.2,
        topP: 0.9,
        stop: ['END'],
        responseFormat: { type: 'json_schema', name: 'answer', schema: { type: 'object' } },
        tools: [weather],
        toolChoice: { type: 'tool', name: 'get_weather' },
        user: 'u-1',
      }),
      'gpt-4o-mini',
      false,
    );
    expect(body).toEqual({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: 'sys' },
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', content: '{"t":21}', tool_call_id: 'call_1' },
      ],
      max_completion_tokens: 300,
      temperature: 0.2,
      top_p: 0.9,
      stop: ['END'],
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' } } },
      tools: [{ type: 'function', function: { name: 'get_weather', description: 'Get weather', parameters: weather.parameters } }],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      user: 'u-1',
    });
  });

  it('asks for usage in streams, omits unset options, and can leave the model out (Azure) or use max_tokens (self-hosted)', () => {
    const body = toOpenAIRequest(params({ responseFormat: { type: 'json_object' } }), 'm', true, { maxTokensField: 'max_tokens', modelInBody: false });
    expect(body).toEqual({
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 100,
      response_format: { type: 'json_object' },
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  it('builds an embeddings body', () => {
    expect(toOpenAIEmbeddingRequest('text-embedding-3-small', ['a', 'b'], 256, 'u')).toEqual({
      model: 'text-embedding-3-small',
      input: ['a', 'b'],
      encoding_format: 'float',
      dimensions: 256,
      user: 'u',
    });
  });
});

describe('fromOpenAIResponse', () => {
  it('maps the documented text answer with usage', () => {
    expect(fromOpenAIResponse(JSON.parse(fixture('openai', 'chat-basic.response.json')))).toEqual({
      content: 'Hello! How can I assist you today?',
      toolCalls: [],
      finishReason: FinishReason.FINISH_REASON_STOP,
      usage: { inputTokens: 19, outputTokens: 10, cachedInputTokens: 0, reasoningTokens: 0 },
      model: 'gpt-4.1-2025-04-14',
    });
  });

  it.each([
    // Prompt caching guide: 1920 of the 2006 prompt tokens came from the cache.
    [{ prompt_tokens: 2006, completion_tokens: 300, total_tokens: 2306, prompt_tokens_details: { cached_tokens: 1920 }, completion_tokens_details: { reasoning_tokens: 0 } }, { inputTokens: 2006, cachedInputTokens: 1920, outputTokens: 300, reasoningTokens: 0 }],
    // Reasoning guide: 1024 of the 1186 completion tokens were reasoning.
    [{ prompt_tokens: 75, completion_tokens: 1186, total_tokens: 1261, prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 1024 } }, { inputTokens: 75, cachedInputTokens: 0, outputTokens: 1186, reasoningTokens: 1024 }],
  ])('reads cached_tokens and reasoning_tokens as parts of prompt_tokens and completion_tokens (%o)', (usage, expected) => {
    expect(fromOpenAIResponse({ choices: [{ message: { content: 'x' }, finish_reason: 'stop' }], usage })?.usage).toEqual(expected);
  });

  it('maps the documented tool call answer', () => {
    const r = fromOpenAIResponse(JSON.parse(fixture('openai', 'chat-tools.response.json')));
    expect(r?.finishReason).toBe(FinishReason.FINISH_REASON_TOOL_CALLS);
    expect(r?.toolCalls).toEqual([{ id: 'call_abc123', name: 'get_current_weather', argumentsJson: '{\n"location": "Boston, MA"\n}' }]);
    expect(r?.content).toBe('');
  });

  it.each([
    ['stop', FinishReason.FINISH_REASON_STOP],
    ['length', FinishReason.FINISH_REASON_LENGTH],
    ['tool_calls', FinishReason.FINISH_REASON_TOOL_CALLS],
    ['content_filter', FinishReason.FINISH_REASON_CONTENT_FILTER],
  ])('maps finish_reason %s', (reason, expected) => {
    expect(fromOpenAIResponse({ choices: [{ message: { content: 'x' }, finish_reason: reason }] })?.finishReason).toBe(expected);
  });

  it('treats a refusal as a content filter outcome', () => {
    const r = fromOpenAIResponse({ choices: [{ message: { content: null, refusal: "I can't help with that." }, finish_reason: 'stop' }] });
    expect(r).toMatchObject({ content: "I can't help with that.", finishReason: FinishReason.FINISH_REASON_CONTENT_FILTER, usage: {} });
  });

  it('orders embeddings by index and reads usage', () => {
    const r = fromOpenAIEmbeddingResponse({ data: [{ index: 1, embedding: [2] }, { index: 0, embedding: [1] }], usage: { prompt_tokens: 5 } }, 2);
    expect(r).toEqual({ vectors: [[1], [2]], usage: { inputTokens: 5 } });
    expect(fromOpenAIEmbeddingResponse({ data: [{ index: 0, embedding: [1] }] }, 2)).toBeUndefined();
  });
});

describe('OpenAIStreamDecoder', () => {
  it('decodes the documented stream with include_usage', () => {
    const d = new OpenAIStreamDecoder('oa');
    const events = decodeSse(fixture('openai', 'stream-basic.sse'), d);
    expect(events).toEqual([{ content: 'Hello' }, { content: '!' }, { finishReason: FinishReason.FINISH_REASON_STOP }, { usage: { inputTokens: 9, outputTokens: 2, cachedInputTokens: undefined, reasoningTokens: undefined } }]);
    expect(d.done).toBe(true);
  });

  it('decodes tool-call deltas', () => {
    const events = decodeSse(fixture('openai', 'stream-tools.sse'), new OpenAIStreamDecoder('oa'), 3);
    expect(events[0]?.toolCalls).toEqual([{ index: 0, id: 'call_DdmO9pD3xa9XTPNJ32zg2hcA', name: 'get_weather', argumentsJsonDelta: '' }]);
    const args = events.flatMap((e) => e.toolCalls ?? []).map((c) => c.argumentsJsonDelta).join('');
    expect(JSON.parse(args)).toEqual({ location: 'Paris, France' });
    expect(events[events.length - 1]?.finishReason).toBe(FinishReason.FINISH_REASON_TOOL_CALLS);
  });

  it('is not done when the stream stops before [DONE]', () => {
    const d = new OpenAIStreamDecoder('oa');
    decodeSse(fixture('openai', 'stream-basic.sse').split('\n\n').slice(0, 3).join('\n\n'), d);
    expect(d.done).toBe(false);
  });

  it('throws a classified error for an in-stream error object', () => {
    expect(() => new OpenAIStreamDecoder('oa').decode('', '{"error":{"message":"The server had an error","type":"server_error"}}')).toThrow(
      expect.objectContaining({ reason: 'http_5xx' }),
    );
  });
});

describe('classifyOpenAIError', () => {
  const body = (message: string, code: string | null = null) => JSON.stringify({ error: { message, type: 'x', param: null, code } });
  it.each([
    [429, { 'retry-after-ms': '1500', 'retry-after': '2' }, 'http_429', 'resource_exhausted', 1500],
    [429, { 'retry-after': '2' }, 'http_429', 'resource_exhausted', 2000],
    [400, {}, 'invalid_request', 'invalid_argument', undefined],
    [404, {}, 'invalid_request', 'invalid_argument', undefined],
    [422, {}, 'invalid_request', 'invalid_argument', undefined],
    [401, {}, 'auth_config', 'unavailable', undefined],
    [403, {}, 'auth_config', 'unavailable', undefined],
    [408, {}, 'timeout', 'unavailable', undefined],
    [500, {}, 'http_5xx', 'unavailable', undefined],
    [503, { 'retry-after': '3' }, 'http_5xx', 'unavailable', 3000],
  ])('%i %j → %s', (status, headers, reason, kind, retryAfter) => {
    const err = classifyOpenAIError('oa', status, body('boom'), headers);
    expect(err).toMatchObject({ reason, kind, status });
    expect(err.retryAfterMs).toBe(retryAfter);
  });

  it('keeps the provider message for a bad request and drops it for auth failures', () => {
    expect(classifyOpenAIError('oa', 400, body("Invalid value for 'temperature'"), {}).message).toContain("Invalid value for 'temperature'");
    const auth = classifyOpenAIError('oa', 401, body('Incorrect API key provided: sk-abc***xyz'), {});
    expect(auth.message).not.toContain('sk-abc');
    expect(auth.message).toContain('gateway configuration fault');
  });

  it('treats an Azure content-filter 400 as a content filter, not a bad request', () => {
    expect(classifyOpenAIError('az', 400, body('The response was filtered', 'content_filter'), {}).reason).toBe('content_filter');
  });
});
