import { AppError } from '@llmgw/errors';
import { ToolChoiceMode } from '@llmgw/proto/executor';
import { Plan } from '@llmgw/proto/router';
import { CacheMode, ChatRequest, EmbedRequest, LatencyClass, ResponseFormatType, Role, type Message, type Tool } from '@llmgw/proto/v1';
import { describe, expect, it } from 'vitest';
import { applyPlan, requestTimeout, shapeChat, shapeEmbed } from './validate.js';
import { testPlan } from './test-config.js';

const CHAT_PLAN = testPlan('chat', ['small-fast', 'claude']);

const user = (content = 'hi'): Message => ({ role: Role.ROLE_USER, content, name: '', toolCalls: [], toolCallId: '' });
const chat = (over: Partial<ChatRequest> = {}): ChatRequest => ChatRequest.fromPartial({ messages: [user()], ...over });
const tool = (name: string, parametersJsonSchema = ''): Tool => ({ name, description: '', parametersJsonSchema, sideEffects: false });
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

describe('shapeChat rejects', () => {
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
    ['33 metadata entries', { metadata: many(33) }, 'metadata', 'at most 32'],
    ['empty metadata key', { metadata: { '': 'v' } }, 'metadata', '1 to 64'],
    ['metadata key over 64 characters', { metadata: { ['k'.repeat(65)]: 'v' } }, 'metadata', '1 to 64'],
    ['metadata value over 512 characters', { metadata: { team: 'x'.repeat(513) } }, 'metadata.team', '512'],
    ['timeout over 600 s', { timeoutMs: 600_001 }, 'timeout_ms', '600000'],
    // Sizes in bytes, before any parser or tokenizer: 'é' is 2 bytes, so characters undercount.
    ['contents over 2 MiB in bytes', { messages: [user('é'.repeat(600_000)), user('é'.repeat(500_000))] }, 'messages', 'over the limit of 2097152'],
    ['129 tools', { tools: Array.from({ length: 129 }, (_, i) => tool(`t${i}`)) }, 'tools', 'at most 128'],
    ['a tool schema over 64 KiB', { tools: [tool('big', `{"description":"${'x'.repeat(64 * 1024)}"}`)] }, 'tools[0].parameters_json_schema', 'over 65536 bytes'],
    [
      'a response schema over 64 KiB',
      { responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, jsonSchema: `{"d":"${'é'.repeat(33_000)}"}`, schemaName: 's' } },
      'response_format.json_schema',
      'over 65536 bytes',
    ],
    ['a stop sequence over 256 bytes', { stop: ['ok', '€'.repeat(86)] }, 'stop[1]', 'over 256 bytes'],
    ['a user over 256 bytes', { user: 'u'.repeat(257) }, 'user', 'over 256 bytes'],
  ];

  it.each(cases)('%s', (_name, over, field, contains) => {
    expectInvalid(() => shapeChat(chat(over), { stream: false }), field, contains);
  });

  it('accepts what is just within the byte limits', () => {
    expect(() => shapeChat(chat({ stop: ['€'.repeat(85)], user: 'u'.repeat(256), messages: [user('é'.repeat(1_048_576))] }), { stream: false })).not.toThrow();
  });

  it('refuses embedding texts over 2 MiB in bytes', () => {
    expectInvalid(() => shapeEmbed(embed({ inputs: ['é'.repeat(700_000), 'é'.repeat(400_000)] })), 'inputs', 'over the limit');
  });

  it('leaves routes to the router: an unknown route is not the edge\'s to refuse', () => {
    expect(() => shapeChat(chat({ route: 'nope' }), { stream: false })).not.toThrow();
  });
});

describe('shapeChat accepts', () => {
  const ok: [string, Partial<ChatRequest>][] = [
    ['one message', {}],
    ['a large max_tokens (the cap is the plan\'s)', { maxTokens: 1_000_000 }],
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
  ];
  it.each(ok)('%s', (_name, over) => {
    expect(() => shapeChat(chat(over), { stream: false })).not.toThrow();
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
    expect(shapeChat(chat(over), { stream }).requiredCapabilities).toEqual(caps);
  });
});

describe('shapeChat parses once, for the executor', () => {
  it('parses each tool\'s parameters schema, and gives a tool without one an empty object schema', () => {
    const shaped = shapeChat(chat({ tools: [{ name: 'get_weather', description: 'Weather by city', parametersJsonSchema: '{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}', sideEffects: false }, tool('ping')] }), { stream: false });
    expect(shaped.tools).toEqual([
      { name: 'get_weather', description: 'Weather by city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
      { name: 'ping', description: '', parameters: { type: 'object', properties: {} } },
    ]);
  });

  it.each<[string, string, ReturnType<typeof shapeChat>['toolChoice']]>([
    ['unset', '', { mode: ToolChoiceMode.TOOL_CHOICE_MODE_AUTO, name: '' }],
    ['auto', 'auto', { mode: ToolChoiceMode.TOOL_CHOICE_MODE_AUTO, name: '' }],
    ['none', 'none', { mode: ToolChoiceMode.TOOL_CHOICE_MODE_NONE, name: '' }],
    ['required', 'required', { mode: ToolChoiceMode.TOOL_CHOICE_MODE_REQUIRED, name: '' }],
    ['a tool name', 'f', { mode: ToolChoiceMode.TOOL_CHOICE_MODE_TOOL, name: 'f' }],
  ])('resolves tool_choice %s', (_name, toolChoice, want) => {
    expect(shapeChat(chat({ tools: [tool('f')], toolChoice }), { stream: false }).toolChoice).toEqual(want);
  });

  it.each<[string, ChatRequest['responseFormat'], ReturnType<typeof shapeChat>['responseFormat']]>([
    ['unset as text', undefined, { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT, name: '', schema: undefined }],
    ['unspecified as text', { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_UNSPECIFIED, jsonSchema: '', schemaName: '' }, { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_TEXT, name: '', schema: undefined }],
    ['json_object', { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT, jsonSchema: '', schemaName: '' }, { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT, name: '', schema: undefined }],
    [
      'json_schema with its parsed schema and name',
      { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, jsonSchema: '{"type":"object","properties":{"n":{"type":"integer"}}}', schemaName: 'count' },
      { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name: 'count', schema: { type: 'object', properties: { n: { type: 'integer' } } } },
    ],
    [
      'json_schema without a name as "response"',
      { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, jsonSchema: '{}', schemaName: '' },
      { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name: 'response', schema: {} },
    ],
  ])('resolves the response format: %s', (_name, responseFormat, want) => {
    expect(shapeChat(chat({ responseFormat }), { stream: false }).responseFormat).toEqual(want);
  });
});

describe('applyPlan', () => {
  const apply = (over: Partial<ChatRequest> = {}, plan: Plan = CHAT_PLAN, promptTokens = 10) => {
    const req = chat(over);
    return applyPlan(req, shapeChat(req, { stream: false }), plan, promptTokens);
  };

  it('resolves max_tokens to the plan\'s default and the timeout to the plan\'s', () => {
    const { params, timeoutMs } = apply();
    expect(params.maxTokens).toBe(256);
    expect(timeoutMs).toBe(10_000);
  });

  it('keeps a given max_tokens up to the plan\'s cap, and refuses one over it naming the route', () => {
    expect(apply({ maxTokens: 100 }).params.maxTokens).toBe(100);
    expect(apply({ maxTokens: 2048 }).params.maxTokens).toBe(2048);
    expectInvalid(() => apply({ maxTokens: 2049 }), 'max_tokens', '2049 is over the cap of 2048 for route "chat"');
    expectInvalid(() => apply({ maxTokens: 1025 }, testPlan('fallback', ['claude'])), 'max_tokens', 'cap of 1024 for route "fallback"');
  });

  it('refuses a default max_tokens over the cap too (a plan the router would not make)', () => {
    expectInvalid(() => apply({}, testPlan('chat', ['small-fast'], { defaultMaxTokens: 3_000 })), 'max_tokens', '3000 is over the cap of 2048');
  });

  it('keeps a shorter caller timeout and caps a longer one at the plan\'s', () => {
    expect(apply({ timeoutMs: 2_000 }).timeoutMs).toBe(2_000);
    expect(apply({ timeoutMs: 500_000 }, testPlan('fallback', ['claude'])).timeoutMs).toBe(30_000);
    expect(requestTimeout(0, CHAT_PLAN)).toBe(10_000);
  });

  it('hands the executor everything it runs with, resolved', () => {
    const { params } = apply({
      maxTokens: 64,
      temperature: 0.3,
      topP: 0.9,
      stop: ['END'],
      user: 'end-user-7',
      latencyClass: LatencyClass.LATENCY_CLASS_BATCH,
      tools: [tool('f', '{"type":"object"}')],
      toolChoice: 'f',
      responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT, jsonSchema: '', schemaName: '' },
      cache: CacheMode.CACHE_MODE_REFRESH,
    });
    expect(params).toEqual({
      messages: [user()],
      maxTokens: 64,
      temperature: 0.3,
      topP: 0.9,
      stop: ['END'],
      tools: [{ name: 'f', description: '', parameters: { type: 'object' } }],
      toolChoice: { mode: ToolChoiceMode.TOOL_CHOICE_MODE_TOOL, name: 'f' },
      responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT, name: '', schema: undefined },
      user: 'end-user-7',
      batch: true,
      noHedge: false,
      cache: CacheMode.CACHE_MODE_REFRESH,
      promptTokens: [],
    });
    expect(apply().params).toMatchObject({ temperature: undefined, topP: undefined, batch: false });
  });

  it('marks the request never to be hedged when the caller marks a tool as having side effects', () => {
    expect(apply({ tools: [tool('lookup')] }).params.noHedge).toBe(false);
    expect(apply({ tools: [tool('lookup'), { ...tool('refund'), sideEffects: true }] }).params.noHedge).toBe(true);
  });

  describe('guardrails from the plan', () => {
    const guarded = testPlan('guarded', ['small-fast']);
    it.each([0, 1, 100])('accepts a prompt of %i tokens under a limit of 100', (tokens) => {
      expect(() => apply({}, guarded, tokens)).not.toThrow();
    });
    it.each([101, 10_000])('refuses a prompt of %i tokens over a limit of 100', (tokens) => {
      expectInvalid(() => apply({}, guarded, tokens), 'messages', `prompt has ${tokens} tokens, over the limit of 100 for route "guarded"`);
    });
    it('accepts any prompt size when the plan sets no limit', () => {
      expect(() => apply({}, CHAT_PLAN, 10_000_000)).not.toThrow();
    });

    const lockedDown = testPlan('locked-down', ['small-fast']);
    it('refuses a tool the route does not allow, naming it', () => {
      expectInvalid(
        () => apply({ tools: [tool('lookup_order', '{}'), tool('delete_account', '{}')] }, lockedDown),
        'tools[1].name',
        'tool "delete_account" is not allowed on route "locked-down"',
      );
      expect(() => apply({ tools: [tool('lookup_order', '{}')] }, lockedDown)).not.toThrow();
    });
    it('refuses every tool on a route that allows none, and no tools is fine there', () => {
      expectInvalid(() => apply({ tools: [tool('f')] }, testPlan('no-tools', ['small-fast'])), 'tools[0].name', 'not allowed on route "no-tools"');
      expect(() => apply({}, testPlan('no-tools', ['small-fast']))).not.toThrow();
    });
    it.each<[string, ResponseFormatType, string]>([
      ['json_object', ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_OBJECT, 'json_object is not allowed on route "locked-down"'],
      ['json_schema', ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, 'json_schema is not allowed on route "locked-down"'],
    ])('refuses a %s response on a text-only route', (_name, type, message) => {
      expectInvalid(() => apply({ responseFormat: { type, jsonSchema: '{}', schemaName: 's' } }, lockedDown), 'response_format.type', message);
    });
    it('counts an unset or unspecified format as text', () => {
      expect(() => apply({}, lockedDown)).not.toThrow();
      expect(() => apply({ responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_UNSPECIFIED, jsonSchema: '', schemaName: '' } }, lockedDown)).not.toThrow();
    });
    it('enforces none when the plan carries no guardrails', () => {
      const bare = testPlan('chat', ['small-fast'], { guardrails: undefined });
      expect(() => apply({ tools: [tool('anything')] }, bare, 1_000_000)).not.toThrow();
    });
  });
});

describe('shapeEmbed', () => {
  it.each<[string, Partial<EmbedRequest>, string, string?]>([
    ['no inputs', { inputs: [] }, 'inputs', 'at least one'],
    ['over 2048 inputs', { inputs: Array.from({ length: 2049 }, () => 'a') }, 'inputs', '2048'],
    ['an empty input', { inputs: ['a', ''] }, 'inputs[1]', 'empty'],
    ['33 metadata entries', { metadata: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) }, 'metadata'],
    ['metadata value over 512 characters', { metadata: { a: 'x'.repeat(513) } }, 'metadata.a'],
    ['timeout over 600 s', { timeoutMs: 700_000 }, 'timeout_ms'],
    // Found by the fuzz test: 2^31 dimensions reached the provider (the simulator made 8,192 per text).
    ['over 3072 dimensions', { dimensions: 3_073 }, 'dimensions', '3072'],
  ])('rejects %s', (_name, over, field, contains) => {
    expectInvalid(() => shapeEmbed(embed(over)), field, contains);
  });

  it('accepts a valid request on any route name (the router resolves routes)', () => {
    expect(() => shapeEmbed(embed({ inputs: ['a', 'b'], timeoutMs: 600_000 }))).not.toThrow();
    expect(() => shapeEmbed(embed({ inputs: ['a'], dimensions: 3_072 }))).not.toThrow();
    expect(() => shapeEmbed(embed({ route: 'nope' }))).not.toThrow();
  });

  it('bounds the embed timeout by the plan\'s', () => {
    const plan = testPlan('embeddings', ['embed-small']);
    expect(requestTimeout(0, plan)).toBe(4_000);
    expect(requestTimeout(1_000, plan)).toBe(1_000);
    expect(requestTimeout(9_000, plan)).toBe(4_000);
  });
});
