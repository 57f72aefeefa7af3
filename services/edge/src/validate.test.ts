import { AppError } from '@llmgw/errors';
import { ChatRequest, EmbedRequest, ResponseFormatType, Role, type Message, type Tool } from '@llmgw/proto/v1';
import { describe, expect, it } from 'vitest';
import { checkPromptSize, validateChat, validateEmbed } from './validate.js';
import { edgeTestConfig } from './test-config.js';


const config = edgeTestConfig();

const user = (content = 'hi'): Message => ({ role: Role.ROLE_USER, content, name: '', toolCalls: [], toolCallId: '' });
const chat = (over: Partial<ChatRequest> = {}): ChatRequest => ChatRequest.fromPartial({ messages: [user()], ...over });
const tool = (name: string, parametersJsonSchema = ''): Tool => ({ name, description: '', parametersJsonSchema });
const embed = (over: Partial<EmbedRequest> = {}): EmbedRequest => EmbedRequest.fromPartial({ route: 'embeddings', inputs: ['a'], ...over });

function caught(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw new Error(`expected an AppError, got ${String(err)}`);
  }
  throw new Error('expected an error, none was thrown');
}

function expectInvalid(fn: () => unknown, field: string, contains?: string): AppError {
  const err = caught(fn);
  expect(err.kind).toBe('invalid_argument');
  expect(err.message.startsWith(`${field}: `), `"${err.message}" should start with "${field}: "`).toBe(true);
  if (contains !== undefined) expect(err.message).toContain(contains);
  return err;
}

describe('validateChat rejects', () => {
  const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));
  const cases: [string, Partial<ChatRequest>, string, string?][] = [
    ['no messages', { messages: [] }, 'messages', 'at least one'],
    ['over 1000 messages', { messages: Array.from({ length: 1001 }, () => user()) }, 'messages', '1000'],
    ['role ROLE_UNSPECIFIED (0)', { messages: [{ ...user(), role: 0 }] }, 'messages[0].role'],
    ['role out of range (99)', { messages: [user(), { ...user(), role: 99 as Role }] }, 'messages[1].role'],
    ['role UNRECOGNIZED (-1)', { messages: [{ ...user(), role: Role.UNRECOGNIZED }] }, 'messages[0].role'],
    ['tool message without tool_call_id', { messages: [user(), { ...user('result'), role: Role.ROLE_TOOL }] }, 'messages[1].tool_call_id'],
    ['empty user content', { messages: [user('')] }, 'messages[0].content'],
    ['empty system content', { messages: [{ ...user(''), role: Role.ROLE_SYSTEM }, user()] }, 'messages[0].content'],
    [
      'tool call arguments that are not JSON',
      { messages: [user(), { ...user(''), role: Role.ROLE_ASSISTANT, toolCalls: [{ id: 'c1', name: 'f', argumentsJson: '{nope' }] }] },
      'messages[1].tool_calls[0].arguments_json',
    ],
    ['max_tokens 0', { maxTokens: 0 }, 'max_tokens', 'positive'],
    ['max_tokens negative', { maxTokens: -5 }, 'max_tokens', 'positive'],
    ['max_tokens over the default route cap', { maxTokens: 2049 }, 'max_tokens', '2049 is over the cap of 2048 for route "chat"'],
    ['max_tokens over a named route cap', { route: 'fallback', maxTokens: 1025 }, 'max_tokens', 'cap of 1024 for route "fallback"'],
    ['temperature below 0', { temperature: -0.1 }, 'temperature'],
    ['temperature above 2', { temperature: 2.01 }, 'temperature'],
    ['temperature NaN', { temperature: Number.NaN }, 'temperature'],
    ['top_p 0', { topP: 0 }, 'top_p'],
    ['top_p above 1', { topP: 1.5 }, 'top_p'],
    ['top_p NaN', { topP: Number.NaN }, 'top_p'],
    ['5 stop sequences', { stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', 'at most 4'],
    ['tool name with a space', { tools: [tool('get weather')] }, 'tools[0].name'],
    ['empty tool name', { tools: [tool('ok'), tool('')] }, 'tools[1].name'],
    ['tool name over 64 characters', { tools: [tool('a'.repeat(65))] }, 'tools[0].name'],
    ['duplicate tools', { tools: [tool('f'), tool('g'), tool('f')] }, 'tools[2].name', 'duplicate'],
    ['tool schema not JSON', { tools: [tool('f', '{"type":')] }, 'tools[0].parameters_json_schema', 'not valid JSON'],
    ['tool schema an array', { tools: [tool('f', '[1,2]')] }, 'tools[0].parameters_json_schema', 'JSON object'],
    ['tool schema null', { tools: [tool('f', 'null')] }, 'tools[0].parameters_json_schema', 'JSON object'],
    ['tool schema a string', { tools: [tool('f', '"s"')] }, 'tools[0].parameters_json_schema', 'JSON object'],
    ['unknown tool_choice', { tools: [tool('f')], toolChoice: 'g' }, 'tool_choice', '"g"'],
    ['tool_choice naming a tool without tools', { toolChoice: 'f' }, 'tool_choice'],
    ['tool_choice required without tools', { toolChoice: 'required' }, 'tool_choice', 'at least one tool'],
    [
      'json_schema format without a schema',
      { responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, jsonSchema: '', schemaName: '' } },
      'response_format.json_schema',
      'required',
    ],
    [
      'json_schema that is not JSON',
      { responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, jsonSchema: '{oops', schemaName: 's' } },
      'response_format.json_schema',
      'not valid JSON',
    ],
    [
      'json_schema that is an array',
      { responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, jsonSchema: '[]', schemaName: 's' } },
      'response_format.json_schema',
      'JSON object',
    ],
    ['unknown response format type', { responseFormat: { type: 42 as ResponseFormatType, jsonSchema: '', schemaName: '' } }, 'response_format.type'],
    ['unknown route', { route: 'nope' }, 'route', '"nope"'],
    ['33 metadata entries', { metadata: many(33) }, 'metadata', 'at most 32'],
    ['empty metadata key', { metadata: { '': 'v' } }, 'metadata', '1 to 64'],
    ['metadata key over 64 characters', { metadata: { ['k'.repeat(65)]: 'v' } }, 'metadata', '1 to 64'],
    ['metadata value over 512 characters', { metadata: { team: 'x'.repeat(513) } }, 'metadata.team', '512'],
    ['timeout over 600 s', { timeoutMs: 600_001 }, 'timeout_ms', '600000'],
    ['a JSON response on a text-only route', { route: 'locked-down', responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT, jsonSchema: '', schemaName: '' } }, 'response_format.type', 'json_object is not allowed on route "locked-down"'],
    ['a tool the route does not allow', { route: 'locked-down', tools: [tool('lookup_order', '{}'), tool('delete_account', '{}')] }, 'tools[1].name', 'tool "delete_account" is not allowed on route "locked-down"'],
  ];

  it.each(cases)('%s', (_name, over, field, contains) => {
    expectInvalid(() => validateChat(chat(over), config, { stream: false }), field, contains);
  });

  it('checks the route before anything else', () => {
    expectInvalid(() => validateChat(chat({ route: 'nope', messages: [] }), config, { stream: false }), 'route');
  });
});

describe('validateChat accepts', () => {
  const ok: [string, Partial<ChatRequest>][] = [
    ['one message', {}],
    ['max_tokens at the cap', { maxTokens: 2048 }],
    ['temperature 0', { temperature: 0 }],
    ['temperature 2', { temperature: 2 }],
    ['top_p 1', { topP: 1 }],
    ['4 stop sequences', { stop: ['a', 'b', 'c', 'd'] }],
    ['32 metadata entries, 64-char key, 512-char value', { metadata: { ['k'.repeat(64)]: 'v'.repeat(512), ...Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`k${i}`, 'v'])) } }],
    ['an assistant message with no content', { messages: [user(), { ...user(''), role: Role.ROLE_ASSISTANT }, user()] }],
    ['a tool message with its tool_call_id', { messages: [user(), { ...user('42'), role: Role.ROLE_TOOL, toolCallId: 'c1' }] }],
    ['tool_choice naming a given tool', { tools: [tool('get_weather-2', '{"type":"object"}')], toolChoice: 'get_weather-2' }],
    ['tool_choice auto/none with no tools', { toolChoice: 'none' }],
    ['timeout of exactly 600 s', { timeoutMs: 600_000 }],
    ['an allowed tool and text on a locked-down route', { route: 'locked-down', tools: [tool('lookup_order', '{}')] }],
  ];
  it.each(ok)('%s', (_name, over) => {
    expect(() => validateChat(chat(over), config, { stream: false })).not.toThrow();
  });

  it('applies the default route, its default max_tokens and its timeout', () => {
    const v = validateChat(chat(), config, { stream: false });
    expect(v.routeName).toBe('chat');
    expect(v.route).toBe(config.routes.chat);
    expect(v.maxTokens).toBe(256);
    expect(v.timeoutMs).toBe(10_000);
    expect(v.requiredCapabilities).toEqual([]);
  });

  it('keeps a given max_tokens and a shorter timeout, and caps a longer one at the route timeout', () => {
    expect(validateChat(chat({ maxTokens: 100, timeoutMs: 2_000 }), config, { stream: false })).toMatchObject({ maxTokens: 100, timeoutMs: 2_000 });
    expect(validateChat(chat({ route: 'fallback', timeoutMs: 500_000 }), config, { stream: false })).toMatchObject({
      routeName: 'fallback',
      maxTokens: 128,
      timeoutMs: 30_000,
    });
  });

  it.each<[string, Partial<ChatRequest>, boolean, string[]]>([
    ['stream', {}, true, ['streaming']],
    ['tools', { tools: [tool('f')] }, false, ['tools']],
    ['json_object', { responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT, jsonSchema: '', schemaName: '' } }, false, ['json_object']],
    [
      'json_schema',
      { responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, jsonSchema: '{"type":"object"}', schemaName: 's' } },
      false,
      ['json_schema'],
    ],
    ['text format', { responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT, jsonSchema: '', schemaName: '' } }, false, []],
    [
      'stream + tools + json_schema',
      { tools: [tool('f')], responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, jsonSchema: '{}', schemaName: 's' } },
      true,
      ['streaming', 'tools', 'json_schema'],
    ],
  ])('requires capabilities for %s', (_name, over, stream, caps) => {
    expect(validateChat(chat(over), config, { stream }).requiredCapabilities).toEqual(caps);
  });
});

describe('validateEmbed', () => {
  it.each<[string, Partial<EmbedRequest>, string, string?]>([
    ['no inputs', { inputs: [] }, 'inputs', 'at least one'],
    ['over 2048 inputs', { inputs: Array.from({ length: 2049 }, () => 'a') }, 'inputs', '2048'],
    ['an empty input', { inputs: ['a', ''] }, 'inputs[1]', 'empty'],
    ['unknown route', { route: 'nope' }, 'route', '"nope"'],
    ['33 metadata entries', { metadata: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) }, 'metadata'],
    ['metadata value over 512 characters', { metadata: { a: 'x'.repeat(513) } }, 'metadata.a'],
    ['timeout over 600 s', { timeoutMs: 700_000 }, 'timeout_ms'],
  ])('rejects %s', (_name, over, field, contains) => {
    expectInvalid(() => validateEmbed(embed(over), config), field, contains);
  });

  it('applies the route timeout, or a shorter requested one', () => {
    expect(validateEmbed(embed(), config)).toMatchObject({ routeName: 'embeddings', timeoutMs: 4_000 });
    expect(validateEmbed(embed({ timeoutMs: 1_000 }), config).timeoutMs).toBe(1_000);
    expect(validateEmbed(embed({ route: '' }), config).routeName).toBe('chat');
  });
});

describe('checkPromptSize', () => {
  const guarded = { route: config.routes.guarded!, routeName: 'guarded' };
  it.each([0, 1, 100])('accepts %i tokens under a limit of 100', (tokens) => {
    expect(() => checkPromptSize(tokens, guarded)).not.toThrow();
  });
  it.each([101, 10_000])('rejects %i tokens over a limit of 100', (tokens) => {
    expectInvalid(() => checkPromptSize(tokens, guarded), 'messages', `${tokens} tokens, over the limit of 100 for route "guarded"`);
  });
  it('accepts any size on a route without a limit', () => {
    expect(() => checkPromptSize(10_000_000, { route: config.routes.chat!, routeName: 'chat' })).not.toThrow();
  });
});
