import { ToolChoiceMode } from '@llmgw/proto/executor';
import { ResponseFormatType } from '@llmgw/proto/v1';
import { describe, expect, it } from 'vitest';
import { chatParamsOf } from './normalise.js';
import { toOpenAIRequest } from './providers/openai/request.js';
import { chatParams, tool, user } from './test-helpers.js';

describe('chatParamsOf: the edge params in the adapters terms', () => {
  it('translates every field without deciding anything again', () => {
    const parameters = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
    const schema = { type: 'object', properties: { answer: { type: 'string' } } };
    const p = chatParamsOf(
      chatParams('hi', {
        maxTokens: 77,
        temperature: 0.3,
        topP: 0.8,
        stop: ['END'],
        tools: [tool('get_weather', parameters, 'weather')],
        toolChoice: { mode: ToolChoiceMode.TOOL_CHOICE_MODE_TOOL, name: 'get_weather' },
        responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name: 'answer', schema },
        user: 'end-user',
      }),
    );
    expect(p).toEqual({
      messages: [user('hi')],
      maxTokens: 77,
      temperature: 0.3,
      topP: 0.8,
      stop: ['END'],
      responseFormat: { type: 'json_schema', name: 'answer', schema },
      tools: [{ name: 'get_weather', description: 'weather', parameters }],
      toolChoice: { type: 'tool', name: 'get_weather' },
      user: 'end-user',
    });
    // The parsed objects are passed on as they are: nothing is parsed twice.
    expect(p.tools[0]?.parameters).toBe(parameters);
  });

  it.each([
    [ToolChoiceMode.TOOL_CHOICE_MODE_UNSPECIFIED, { type: 'auto' }],
    [ToolChoiceMode.TOOL_CHOICE_MODE_AUTO, { type: 'auto' }],
    [ToolChoiceMode.TOOL_CHOICE_MODE_NONE, { type: 'none' }],
    [ToolChoiceMode.TOOL_CHOICE_MODE_REQUIRED, { type: 'required' }],
    [ToolChoiceMode.TOOL_CHOICE_MODE_TOOL, { type: 'tool', name: 'f' }],
  ] as const)('maps tool choice mode %s', (mode, expected) => {
    expect(chatParamsOf(chatParams('hi', { tools: [tool('f')], toolChoice: { mode, name: 'f' } })).toolChoice).toEqual(expected);
  });

  it('maps an absent tool choice to auto and an absent or text format to text', () => {
    const p = chatParamsOf(chatParams('hi', { toolChoice: undefined, responseFormat: undefined }));
    expect(p.toolChoice).toEqual({ type: 'auto' });
    expect(p.responseFormat).toEqual({ type: 'text' });
    expect(chatParamsOf(chatParams('hi')).responseFormat).toEqual({ type: 'text' });
  });

  it('maps json_object, and a tool without parameters to an empty schema', () => {
    const p = chatParamsOf(
      chatParams('hi', { responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT, name: '', schema: undefined }, tools: [{ name: 'f', description: '', parameters: undefined }] }),
    );
    expect(p.responseFormat).toEqual({ type: 'json_object' });
    expect(p.tools[0]?.parameters).toEqual({});
  });

  it('refuses missing params as INVALID_ARGUMENT', () => {
    expect(() => chatParamsOf(undefined)).toThrow(expect.objectContaining({ kind: 'invalid_argument' }));
  });

  it('reaches a provider request unchanged (OpenAI)', () => {
    const body = toOpenAIRequest(
      chatParamsOf(chatParams('hi', { tools: [tool('f', { type: 'object' })], toolChoice: { mode: ToolChoiceMode.TOOL_CHOICE_MODE_REQUIRED, name: '' }, maxTokens: 9 })),
      'gpt-4o-mini',
      false,
    );
    expect(body).toMatchObject({ max_completion_tokens: 9, tool_choice: 'required', tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }] });
  });
});
