import { FinishReason, Role } from '@llmgw/proto/v1';
import { describe, expect, it } from 'vitest';
import { decodeSse, fixture, params, user } from '../../test-helpers.js';
import { classifyAnthropicError } from './errors.js';
import { JSON_OBJECT_INSTRUCTION, STRUCTURED_OUTPUT_TOOL, toAnthropicRequest } from './request.js';
import { fromAnthropicResponse } from './response.js';
import { AnthropicStreamDecoder } from './stream.js';

const weather = { name: 'get_weather', description: 'Get weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } };

describe('toAnthropicRequest', () => {
  it('puts system apart, turns tool calls and results into content blocks, maps every parameter', () => {
    const body = toAnthropicRequest(
      params({
        messages: [
          { role: Role.ROLE_SYSTEM, content: 'be brief', name: '', toolCalls: [], toolCallId: '' },
          user('weather in SF and NYC?'),
          {
            role: Role.ROLE_ASSISTANT,
            content: 'Checking.',
            name: '',
            toolCalls: [
              { id: 'toolu_1', name: 'get_weather', argumentsJson: '{"location":"SF"}' },
              { id: 'toolu_2', name: 'get_weather', argumentsJson: '{"location":"NYC"}' },
            ],
            toolCallId: '',
          },
          { role: Role.ROLE_TOOL, content: '15C', name: '', toolCalls: [], toolCallId: 'toolu_1' },
          { role: Role.ROLE_TOOL, content: '20C', name: '', toolCalls: [], toolCallId: 'toolu_2' },
        ],
        maxTokens: 1024,
        temperature: 0.5,
        topP: 0.8,
        stop: ['\n\nHuman:'],
        tools: [weather],
        toolChoice: { type: 'required' },
        user: 'user-42',
      }),
      'claude-sonnet-4-5',
      true,
    );
    expect(body).toEqual({
      model: 'claude-sonnet-4-5',
      max_tokens: 1024,
      system: 'be brief',
      messages: [
        { role: 'user', content: 'weather in SF and NYC?' },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Checking.' },
            { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { location: 'SF' } },
            { type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { location: 'NYC' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_1', content: '15C' },
            { type: 'tool_result', tool_use_id: 'toolu_2', content: '20C' },
          ],
        },
      ],
      temperature: 0.5,
      top_p: 0.8,
      stop_sequences: ['\n\nHuman:'],
      tools: [{ name: 'get_weather', description: 'Get weather', input_schema: weather.parameters }],
      tool_choice: { type: 'any' },
      metadata: { user_id: 'user-42' },
      stream: true,
    });
  });

  it.each([
    [{ type: 'auto' } as const, { type: 'auto' }],
    [{ type: 'none' } as const, { type: 'none' }],
    [{ type: 'tool', name: 'get_weather' } as const, { type: 'tool', name: 'get_weather' }],
  ])('maps tool_choice %j', (choice, expected) => {
    expect(toAnthropicRequest(params({ tools: [weather], toolChoice: choice }), 'm', false).tool_choice).toEqual(expected);
  });

  it('honours json_object with a system instruction and json_schema with a forced tool', () => {
    expect(toAnthropicRequest(params({ responseFormat: { type: 'json_object' } }), 'm', false).system).toBe(JSON_OBJECT_INSTRUCTION);
    const schema = { type: 'object', properties: { answer: { type: 'string' } } };
    const body = toAnthropicRequest(params({ responseFormat: { type: 'json_schema', name: 'answer', schema } }), 'm', false);
    expect(body.tools).toEqual([expect.objectContaining({ name: STRUCTURED_OUTPUT_TOOL, input_schema: schema })]);
    expect(body.tool_choice).toEqual({ type: 'tool', name: STRUCTURED_OUTPUT_TOOL });
  });
});

describe('fromAnthropicResponse', () => {
  it('maps the documented text answer', () => {
    expect(fromAnthropicResponse(JSON.parse(fixture('anthropic', 'chat-basic.response.json')))).toEqual({
      content: 'Hello!',
      toolCalls: [],
      finishReason: FinishReason.FINISH_REASON_STOP,
      usage: { inputTokens: 12, outputTokens: 6, cachedInputTokens: 0, cacheWriteInputTokens: 0 },
      model: 'claude-sonnet-4-5',
    });
  });

  it('maps the documented tool_use answer, counting cache reads as input', () => {
    expect(fromAnthropicResponse(JSON.parse(fixture('anthropic', 'chat-tools.response.json')))).toEqual({
      content: "I'll check the current weather in San Francisco for you.",
      toolCalls: [{ id: 'toolu_01A09q90qw90lq917835lq9', name: 'get_weather', argumentsJson: '{"location":"San Francisco, CA","unit":"celsius"}' }],
      finishReason: FinishReason.FINISH_REASON_TOOL_CALLS,
      usage: { inputTokens: 484, outputTokens: 70, cachedInputTokens: 100, cacheWriteInputTokens: 0 },
      model: 'claude-sonnet-4-5',
    });
  });

  it.each([
    ['end_turn', FinishReason.FINISH_REASON_STOP],
    ['stop_sequence', FinishReason.FINISH_REASON_STOP],
    ['max_tokens', FinishReason.FINISH_REASON_LENGTH],
    ['tool_use', FinishReason.FINISH_REASON_TOOL_CALLS],
    ['refusal', FinishReason.FINISH_REASON_CONTENT_FILTER],
  ])('maps stop_reason %s', (reason, expected) => {
    expect(fromAnthropicResponse({ content: [], stop_reason: reason })?.finishReason).toBe(expected);
  });

  it('turns the structured-output tool back into the message text', () => {
    const r = fromAnthropicResponse({ content: [{ type: 'tool_use', id: 't', name: STRUCTURED_OUTPUT_TOOL, input: { answer: 'yes' } }], stop_reason: 'tool_use' });
    expect(r).toMatchObject({ content: '{"answer":"yes"}', toolCalls: [], finishReason: FinishReason.FINISH_REASON_STOP });
  });
});

describe('anthropicUsage', () => {
  // Prompt caching guide: input_tokens leaves out what was written to or read from the cache.
  it.each([
    [{ input_tokens: 21, cache_creation_input_tokens: 188086, cache_read_input_tokens: 0, output_tokens: 393 }, { inputTokens: 188107, cacheWriteInputTokens: 188086, cachedInputTokens: 0, outputTokens: 393 }],
    [{ input_tokens: 21, cache_creation_input_tokens: 0, cache_read_input_tokens: 188086, output_tokens: 393 }, { inputTokens: 188107, cacheWriteInputTokens: 0, cachedInputTokens: 188086, outputTokens: 393 }],
  ])('counts cache writes and reads as input, and as its parts (%o)', (usage, expected) => {
    expect(fromAnthropicResponse({ content: [{ type: 'text', text: 'x' }], stop_reason: 'end_turn', usage })?.usage).toEqual(expected);
  });
});

describe('AnthropicStreamDecoder', () => {
  it('decodes the documented stream with usage from message_start and message_delta', () => {
    const d = new AnthropicStreamDecoder('an');
    expect(decodeSse(fixture('anthropic', 'stream-basic.sse'), d)).toEqual([
      { usage: { inputTokens: 25, cachedInputTokens: 0, cacheWriteInputTokens: 0 } },
      { content: 'Hello' },
      { content: '!' },
      { finishReason: FinishReason.FINISH_REASON_STOP, usage: { outputTokens: 15 } },
    ]);
    expect(d.done).toBe(true);
  });

  it('indexes tool calls by call, not by content block', () => {
    const events = decodeSse(fixture('anthropic', 'stream-tools.sse'), new AnthropicStreamDecoder('an'), 11);
    const calls = events.flatMap((e) => e.toolCalls ?? []);
    expect(calls[0]).toEqual({ index: 0, id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', name: 'get_weather', argumentsJsonDelta: '' });
    expect(calls.every((c) => c.index === 0)).toBe(true);
    expect(JSON.parse(calls.map((c) => c.argumentsJsonDelta).join(''))).toEqual({ location: 'San Francisco, CA' });
    expect(events.map((e) => e.content).filter(Boolean)).toEqual(["Okay, let's check the weather:"]);
    expect(events[events.length - 1]).toEqual({ finishReason: FinishReason.FINISH_REASON_TOOL_CALLS, usage: { outputTokens: 89 } });
  });

  it('throws a retriable error for an overloaded_error event', () => {
    expect(() => decodeSse(fixture('anthropic', 'stream-error.sse'), new AnthropicStreamDecoder('an'))).toThrow(
      expect.objectContaining({ reason: 'http_5xx', status: 529 }),
    );
  });
});

describe('classifyAnthropicError', () => {
  const body = (type: string, message: string) => JSON.stringify({ type: 'error', error: { type, message } });
  it.each([
    [400, 'invalid_request_error', 'invalid_request'],
    [401, 'authentication_error', 'auth_config'],
    [403, 'permission_error', 'auth_config'],
    [404, 'not_found_error', 'invalid_request'],
    [413, 'request_too_large', 'invalid_request'],
    [429, 'rate_limit_error', 'http_429'],
    [500, 'api_error', 'http_5xx'],
    [529, 'overloaded_error', 'http_5xx'],
  ])('%i %s → %s', (status, type, reason) => {
    expect(classifyAnthropicError('an', status, body(type, 'msg'), { 'retry-after': '7' })).toMatchObject({ reason, status });
  });

  it('carries retry-after and the provider message', () => {
    const err = classifyAnthropicError('an', 429, body('rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit'), { 'retry-after': '7' });
    expect(err.retryAfterMs).toBe(7000);
    expect(err.message).toContain('per-minute rate limit');
  });
});
