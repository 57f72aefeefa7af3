import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { AuthCache } from '@llmgw/caller-auth';
import { AppError } from '@llmgw/errors';
import { silentLogger } from '@llmgw/logging';
import { ErrorKind, ExecuteChatResponse, ExecuteEmbedResponse, ToolChoiceMode, type ExecuteChatStreamResponse } from '@llmgw/proto/executor';
import { QuotaDecision, ReserveQuotaResponse } from '@llmgw/proto/quota';
import { ChatStreamResponse, FinishReason, LatencyClass, Priority, QualityTier, ResponseFormatType, Role, TaskType } from '@llmgw/proto/v1';
import { IntentClassifier } from '../intent-classifier.js';
import { GatewayPipeline } from '../pipeline.js';
import { PlanCache } from '../plan-cache.js';
import { edgeTestSections } from '../test-config.js';
import { execError, FakeDownstream, GOOD_KEY, ROUTING, USAGE } from '../test-downstream.js';
import { createHttpSurface, listenHttp } from './surface.js';

const MAX_BODY = 64 * 1024;
let downstream = new FakeDownstream();
const pipeline = new GatewayPipeline({
  config: () => edgeTestSections(),
  intents: new IntentClassifier({ logger: silentLogger() }),
  // One server for the file; each test gets a fresh fake behind it.
  downstream: new Proxy({} as FakeDownstream, { get: (_t, p) => (downstream as unknown as Record<PropertyKey, unknown>)[p] }),
  authCache: new AuthCache({ now: Date.now }),
  planCache: new PlanCache({ ttlMs: 0, now: Date.now }),
  now: Date.now,
});
const handled: [string, number][] = [];
const errorLines: unknown[] = [];
const logger = silentLogger();
logger.error = ((obj: unknown) => void errorLines.push(obj)) as typeof logger.error;
const server = createHttpSurface(pipeline, logger, { maxBodyBytes: MAX_BODY, metrics: { handled: (endpoint, status) => void handled.push([endpoint, status]) } });
const port = await listenHttp(server, '127.0.0.1:0');
const base = `http://127.0.0.1:${port}`;
afterAll(() => new Promise<void>((r) => server.close(() => r())));

beforeEach(() => {
  downstream = new FakeDownstream();
  handled.length = 0;
  errorLines.length = 0;
});

const openai = (apiKey = GOOD_KEY) => new OpenAI({ apiKey, baseURL: `${base}/v1`, maxRetries: 0 });
const anthropic = (apiKey = GOOD_KEY) => new Anthropic({ apiKey, baseURL: base, maxRetries: 0 });

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${GOOD_KEY}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { res, body: (await res.text()) as string };
}

const chunk = (over: Partial<ChatStreamResponse>): ExecuteChatStreamResponse => ({ chunk: ChatStreamResponse.fromPartial({ id: 'resp-s', model: 'small-fast', ...over }), error: undefined });
const sseData = (text: string) => text.split('\n\n').filter(Boolean).map((e) => e.split('\n').find((l) => l.startsWith('data: '))!.slice(6));

describe('OpenAI chat completions: the request as the pipeline takes it', () => {
  it('maps messages, tools, formats, sampling and the gateway\'s intent fields; `model` goes to the router as model_or_route', async () => {
    const { res } = await post(
      '/v1/chat/completions',
      {
        model: 'support',
        messages: [
          { role: 'developer', content: 'Be terse.' },
          { role: 'user', content: [{ type: 'text', text: 'Where is' }, { type: 'text', text: 'my order?' }], name: 'ann' },
          { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'lookup', arguments: '{"id":7}' } }] },
          { role: 'tool', tool_call_id: 'c1', content: 'shipped' },
        ],
        tools: [{ type: 'function', function: { name: 'lookup', description: 'find', parameters: { type: 'object', properties: { id: { type: 'integer' } } } } }],
        tool_choice: { type: 'function', function: { name: 'lookup' } },
        response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' } } },
        max_completion_tokens: 99,
        temperature: 0.5,
        top_p: 0.9,
        stop: 'END',
        user: 'u-1',
        task_type: 'summarization',
        priority: 'high',
        metadata: { team: 'body' },
      },
      { 'x-llmgw-quality-tier': 'premium', 'x-llmgw-latency-class': 'batch', 'x-llmgw-task-type': 'code', 'x-llmgw-metadata-team': 'header', 'x-llmgw-metadata-feature': 'faq' },
    );
    expect(res.status).toBe(200);
    const plan = downstream.calls.planRoute[0]!.req;
    expect(plan).toMatchObject({ modelOrRoute: 'support', route: '', model: '', taskType: TaskType.TASK_TYPE_SUMMARIZATION, qualityTier: QualityTier.QUALITY_TIER_PREMIUM, latencyClass: LatencyClass.LATENCY_CLASS_BATCH });
    expect(plan.requiredCapabilities).toEqual(['tools', 'json_schema']);
    const params = downstream.calls.executeChat[0]!.req.params!;
    expect(params.messages.map((m) => [m.role, m.content, m.name, m.toolCallId, m.toolCalls])).toEqual([
      [Role.ROLE_SYSTEM, 'Be terse.', '', '', []],
      [Role.ROLE_USER, 'Where is\nmy order?', 'ann', '', []],
      [Role.ROLE_ASSISTANT, '', '', '', [{ id: 'c1', name: 'lookup', argumentsJson: '{"id":7}' }]],
      [Role.ROLE_TOOL, 'shipped', '', 'c1', []],
    ]);
    expect(params).toMatchObject({ maxTokens: 99, temperature: 0.5, topP: 0.9, stop: ['END'], user: 'u-1', batch: true });
    expect(params.tools).toEqual([{ name: 'lookup', description: 'find', parameters: { type: 'object', properties: { id: { type: 'integer' } } } }]);
    expect(params.toolChoice).toEqual({ mode: ToolChoiceMode.TOOL_CHOICE_MODE_TOOL, name: 'lookup' });
    expect(params.responseFormat).toEqual({ type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, name: 'answer', schema: { type: 'object' } });
    expect(downstream.calls.reserveQuota).toHaveLength(1);
  });

  it('reads a template, its version and variables from body fields: the system prompt is rendered and the prompt version recorded', async () => {
    const { res } = await post('/v1/chat/completions', {
      model: 'support',
      messages: [{ role: 'user', content: 'hi' }],
      template: 'answer',
      template_version: 'v2',
      template_variables: { product: 'Acme', plan: 'pro' },
    });
    expect(res.status).toBe(200);
    const req = downstream.calls.executeChat.at(-1)!.req;
    expect(req.params?.messages[0]).toMatchObject({ role: Role.ROLE_SYSTEM, content: 'You help Acme customers on pro.' });
    expect(req.labels?.promptVersion).toBe('answer@v2');
    const missing = await post('/v1/chat/completions', { model: 'support', messages: [{ role: 'user', content: 'hi' }], template: 'answer', template_version: 'v2', template_variables: { product: 'Acme' } });
    expect(missing.res.status).toBe(400);
    expect(missing.body).toContain('missing plan');
  });

  it('reads priority, prompt version and metadata (body first, headers for the rest)', async () => {
    const seen: unknown[] = [];
    const orig = pipeline.chat.bind(pipeline);
    pipeline.chat = async (req, ctx, target) => {
      seen.push(req);
      return orig(req, ctx, target);
    };
    try {
      await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }], priority: 'high', metadata: { team: 'body' } }, {
        'x-llmgw-prompt-version': 'v7',
        'x-llmgw-metadata-team': 'header',
        'x-llmgw-metadata-feature': 'faq',
      });
    } finally {
      pipeline.chat = orig;
    }
    expect(seen[0]).toMatchObject({ priority: Priority.PRIORITY_HIGH, promptVersion: 'v7', metadata: { team: 'body', feature: 'faq' } });
  });

  it('answers in OpenAI\'s shape with the routing record in a header and the extension field, and the request id', async () => {
    downstream.chatResult = async () =>
      ExecuteChatResponse.fromPartial({
        response: {
          id: 'resp-9',
          model: 'small-fast',
          provider: 'sim-openai',
          message: { role: Role.ROLE_ASSISTANT, content: '', toolCalls: [{ id: 'c9', name: 'lookup', argumentsJson: '{"id":1}' }] },
          finishReason: FinishReason.FINISH_REASON_TOOL_CALLS,
          usage: USAGE,
          routing: { ...ROUTING, split: 'canary-20' },
        },
      });
    const r = await openai().chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    expect(r.data.choices[0]).toMatchObject({ finish_reason: 'tool_calls', message: { role: 'assistant', content: null, tool_calls: [{ id: 'c9', type: 'function', function: { name: 'lookup', arguments: '{"id":1}' } }] } });
    // The parts as OpenAI reports them: cached within prompt_tokens, reasoning within completion_tokens.
    expect(r.data.usage).toEqual({ prompt_tokens: 21, completion_tokens: 34, total_tokens: 55, prompt_tokens_details: { cached_tokens: 8 }, completion_tokens_details: { reasoning_tokens: 5 } });
    const routing = JSON.parse(r.response.headers.get('x-llmgw-routing')!);
    expect(routing).toMatchObject({ route: 'chat', rule: 'default', split: 'canary-20', chosen_model: 'small-fast', fallback_used: true });
    expect(routing.attempts.map((a: { model: string; outcome: string; reason: string }) => [a.model, a.outcome, a.reason])).toEqual([['claude', 'failed', 'http_5xx'], ['small-fast', 'success', '']]);
    const ext = (r.data as unknown as { llmgw: { routing: { attempts: { error: string }[] }; cost_micros: number } }).llmgw;
    expect(ext.cost_micros).toBe(99);
    expect(ext.routing.attempts[0]!.error).toBe('boom');
    expect(r.response.headers.get('x-request-id')).toBe(downstream.calls.executeChat[0]!.req.requestId);
  });
});

describe('errors as the SDKs expect them', () => {
  it.each([
    ['an unknown parameter', { model: 'm', messages: [{ role: 'user', content: 'hi' }], seed: 1 }, 'body', /unsupported parameter "seed"/],
    ['n other than 1', { model: 'm', messages: [{ role: 'user', content: 'hi' }], n: 2 }, 'n', /expected 1/],
    ['an unknown role', { model: 'm', messages: [{ role: 'robot', content: 'hi' }] }, 'messages[0].role', /./],
    ['an image part', { model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages[0].content[0].type', /"image_url" is not supported/],
    ['an empty message (the pipeline\'s check)', { model: 'm', messages: [{ role: 'user', content: '' }] }, 'messages[0].content', /must not be empty/],
    ['a bad tool name (in OpenAI\'s spelling)', { model: 'm', messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'a b' } }] }, 'tools[0].function.name', /letters/],
    ['an unknown task type', { model: 'm', messages: [{ role: 'user', content: 'hi' }], task_type: 'dreaming' }, 'task_type', /one of chat, summarization/],
    ['a missing model', { messages: [{ role: 'user', content: 'hi' }] }, 'model', /expected string/],
  ])('%s is 400 naming the field, before anything downstream', async (_name, body, param, message) => {
    const { res, body: text } = await post('/v1/chat/completions', body);
    expect(res.status).toBe(400);
    const { error } = JSON.parse(text);
    expect(error).toMatchObject({ type: 'invalid_request_error', param });
    expect(error.message).toMatch(message);
    expect(downstream.calls.executeChat).toHaveLength(0);
  });

  it('malformed JSON is 400, a JSON array too', async () => {
    for (const body of ['{"model": ', '[1,2]', 'null']) {
      const { res, body: text } = await post('/v1/chat/completions', body);
      expect(res.status).toBe(400);
      expect(JSON.parse(text).error.type).toBe('invalid_request_error');
    }
    expect(downstream.totalCalls()).toBe(0);
  });

  it('a body over the limit is 413, declared or streamed, in each dialect\'s shape', async () => {
    const big = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(MAX_BODY) }] });
    const declared = await post('/v1/chat/completions', big);
    expect(declared.res.status).toBe(413);
    expect(JSON.parse(declared.body).error.code).toBe('request_too_large');
    const chunked = await fetch(`${base}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': GOOD_KEY },
      body: new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode(big));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(await chunked.json()).toMatchObject({ type: 'error', error: { type: 'request_too_large' } });
    expect(downstream.totalCalls()).toBe(0);
  });

  it('an unknown path is 404 and a wrong method 405 with Allow', async () => {
    const missing = await fetch(`${base}/v1/completions`, { method: 'POST', body: '{}' });
    expect(missing.status).toBe(404);
    const wrong = await fetch(`${base}/v1/chat/completions`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
  });

  it('a bad key is the SDKs\' authentication error', async () => {
    downstream.auth = { principal: undefined, cacheTtlMs: 0 };
    await expect(openai('sk-wrong').chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(anthropic('sk-wrong').messages.create({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
    const noKey = await fetch(`${base}/v1/models`);
    expect(noKey.status).toBe(401);
  });

  it('a quota denial is 429 with retry-after, retry-after-ms and the x-ratelimit-* headers: the SDKs\' rate-limit error', async () => {
    downstream.quota = ReserveQuotaResponse.fromPartial({ decision: QuotaDecision.QUOTA_DECISION_DENIED, limit: 'requests_per_minute', limitValue: 60, remaining: 0, resetMs: 1_500, retryAfterMs: 1_500 });
    const err = await openai().chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const headers = (err as InstanceType<typeof OpenAI.RateLimitError>).headers;
    expect([headers.get('retry-after'), headers.get('retry-after-ms'), headers.get('x-ratelimit-limit'), headers.get('x-ratelimit-remaining'), headers.get('x-ratelimit-name')]).toEqual(['2', '1500', '60', '0', 'requests_per_minute']);
    const a = await anthropic().messages.create({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(a).toBeInstanceOf(Anthropic.RateLimitError);
    expect((a as InstanceType<typeof Anthropic.RateLimitError>).headers.get('retry-after')).toBe('2');
  });

  it('tells the SDKs not to retry a wait of more than a minute (a budget, not a blip)', async () => {
    downstream.quota = ReserveQuotaResponse.fromPartial({ decision: QuotaDecision.QUOTA_DECISION_DENIED, limit: 'tokens_per_day', limitValue: 10, retryAfterMs: 3_600_000 });
    const { res } = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    expect([res.status, res.headers.get('retry-after'), res.headers.get('x-should-retry')]).toEqual([429, '3600', 'false']);
  });

  it.each([
    ['UNAVAILABLE', ErrorKind.ERROR_KIND_UNAVAILABLE, 503, OpenAI.InternalServerError, 'server_error'],
    ['DEADLINE_EXCEEDED', ErrorKind.ERROR_KIND_DEADLINE_EXCEEDED, 504, OpenAI.InternalServerError, 'server_error'],
    ['INTERNAL', ErrorKind.ERROR_KIND_INTERNAL, 500, OpenAI.InternalServerError, 'server_error'],
    ['PERMISSION_DENIED', ErrorKind.ERROR_KIND_PERMISSION_DENIED, 403, OpenAI.PermissionDeniedError, 'permission_error'],
  ])('an execution failure of kind %s is %s, with every attempt in the routing header', async (_name, kind, status, type, errorType) => {
    downstream.chatResult = async () => ExecuteChatResponse.fromPartial({ error: execError(kind, 'all attempts failed'), response: { routing: ROUTING } });
    const err = await openai().chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(type);
    const e = err as InstanceType<typeof OpenAI.APIError>;
    expect(e.status).toBe(status);
    expect((e.error as { type: string }).type).toBe(errorType);
    expect(JSON.parse(e.headers?.get('x-llmgw-routing') ?? '{}').attempts).toHaveLength(2);
  });

  it('a model or route nobody knows is 404 model_not_found', async () => {
    downstream.plan = new AppError('not_found', 'model: no route or model is named "gpt-9"');
    const err = (await openai().chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.NotFoundError>;
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.error).toMatchObject({ param: 'model', code: 'model_not_found' });
  });
});

describe('the surface itself', () => {
  it('counts each request by endpoint and status', async () => {
    await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    await post('/v1/chat/completions', '{');
    await fetch(`${base}/v1/nope`);
    await expect.poll(() => handled.length).toBe(3);
    expect(handled).toEqual([['chat_completions', 200], ['chat_completions', 400], ['unknown', 404]]);
  });

  it('a caller that hangs up in the middle of its body is a cancellation, not an error', async () => {
    const { connect } = await import('node:net');
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"model":`);
    await new Promise((r) => setTimeout(r, 50));
    socket.destroy();
    await expect.poll(() => handled).toEqual([['chat_completions', 499]]);
    expect(errorLines).toEqual([]);
    expect(downstream.totalCalls()).toBe(0);
  });
});

describe('OpenAI streaming', () => {
  const steps = () => [
    chunk({ contentDelta: 'Hel' }),
    chunk({ toolCallDeltas: [{ index: 0, id: 'c1', name: 'lookup', argumentsJsonDelta: '{"id"' }] }),
    chunk({ toolCallDeltas: [{ index: 0, id: '', name: '', argumentsJsonDelta: ':1}' }] }),
    chunk({ finishReason: FinishReason.FINISH_REASON_TOOL_CALLS, usage: USAGE, routing: ROUTING, provider: 'sim-openai' }),
  ];

  it('sends deltas, the finish chunk, the usage chunk when asked, then [DONE]', async () => {
    downstream.stream = steps();
    const { res, body } = await post('/v1/chat/completions', { model: 'chat', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const data = sseData(body);
    expect(data.at(-1)).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    expect(chunks.map((c) => c.choices[0]?.delta ?? null)).toEqual([
      { role: 'assistant', content: 'Hel' },
      { tool_calls: [{ index: 0, id: 'c1', type: 'function', function: { name: 'lookup', arguments: '{"id"' } }] },
      { tool_calls: [{ index: 0, function: { arguments: ':1}' } }] },
      {},
      null,
    ]);
    expect(chunks[3].choices[0].finish_reason).toBe('tool_calls');
    expect(chunks[4]).toMatchObject({ choices: [], usage: { prompt_tokens: 21, completion_tokens: 34, total_tokens: 55 }, llmgw: { cost_micros: 99, routing: { fallback_used: true } } });
  });

  it('without include_usage: no usage chunk; the extension field rides on the finish chunk', async () => {
    downstream.stream = steps();
    const chunks = [];
    for await (const c of await openai().chat.completions.create({ model: 'chat', stream: true, messages: [{ role: 'user', content: 'hi' }] })) chunks.push(c);
    expect(chunks.some((c) => c.usage)).toBe(false);
    expect((chunks.at(-1) as unknown as { llmgw: { routing: unknown } }).llmgw.routing).toBeTruthy();
  });

  it('a stream that breaks mid-way sends its usage, then an error the SDK raises', async () => {
    downstream.stream = [
      chunk({ contentDelta: 'Hel' }),
      { chunk: ChatStreamResponse.fromPartial({ id: 'resp-s', finishReason: FinishReason.FINISH_REASON_ERROR, usage: { ...USAGE, tokensEstimated: true }, routing: ROUTING }), error: execError(ErrorKind.ERROR_KIND_UNAVAILABLE, 'provider dropped the stream') },
    ];
    const seen: OpenAI.ChatCompletionChunk[] = [];
    const stream = await openai().chat.completions.create({ model: 'chat', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
    const err = await (async () => {
      for await (const c of stream) seen.push(c);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(String((err as Error).message)).toContain('provider dropped the stream');
    expect(seen.at(-1)?.usage?.completion_tokens).toBe(34);
  });

  it('a caller that goes away cancels the executor call', async () => {
    let signal: AbortSignal | undefined;
    downstream.executeChatStream = (_req, opts) => {
      signal = opts.signal;
      return (async function* () {
        yield chunk({ contentDelta: 'first' });
        await new Promise((r) => opts.signal?.addEventListener('abort', r, { once: true }));
        throw new Error('aborted');
      })();
    };
    const controller = new AbortController();
    const stream = await openai().chat.completions.create({ model: 'chat', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { signal: controller.signal });
    for await (const _c of stream) {
      controller.abort();
      break;
    }
    await expect.poll(() => signal?.aborted).toBe(true);
  });
});

describe('Anthropic messages', () => {
  it('lifts the system prompt, turns tool results into tool messages and tool uses into tool calls, and maps tool choice and the user', async () => {
    await anthropic().messages.create({
      model: 'support',
      max_tokens: 77,
      system: [{ type: 'text', text: 'Be terse.' }],
      metadata: { user_id: 'u-9' },
      tools: [{ name: 'lookup', input_schema: { type: 'object', properties: {} } }],
      tool_choice: { type: 'any' },
      stop_sequences: ['END'],
      messages: [
        { role: 'user', content: 'Where is my order?' },
        { role: 'assistant', content: [{ type: 'text', text: 'Checking.' }, { type: 'tool_use', id: 't1', name: 'lookup', input: { id: 7 } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: 'shipped' }] }, { type: 'text', text: 'So?' }] },
      ],
    });
    expect(downstream.calls.planRoute[0]!.req.modelOrRoute).toBe('support');
    const params = downstream.calls.executeChat[0]!.req.params!;
    expect(params.messages.map((m) => [m.role, m.content, m.toolCallId, m.toolCalls])).toEqual([
      [Role.ROLE_SYSTEM, 'Be terse.', '', []],
      [Role.ROLE_USER, 'Where is my order?', '', []],
      [Role.ROLE_ASSISTANT, 'Checking.', '', [{ id: 't1', name: 'lookup', argumentsJson: '{"id":7}' }]],
      [Role.ROLE_TOOL, 'shipped', 't1', []],
      [Role.ROLE_USER, 'So?', '', []],
    ]);
    expect(params).toMatchObject({ maxTokens: 77, stop: ['END'], user: 'u-9', toolChoice: { mode: ToolChoiceMode.TOOL_CHOICE_MODE_REQUIRED, name: '' } });
  });

  it('names the caller\'s own field when the pipeline refuses one (messages renumbered around the system prompt)', async () => {
    const err = (await anthropic()
      .messages.create({ model: 'm', max_tokens: 5, system: 'Be terse.', messages: [{ role: 'user', content: 'ok' }, { role: 'assistant', content: 'fine' }, { role: 'user', content: '' }] })
      .catch((e: unknown) => e)) as InstanceType<typeof Anthropic.BadRequestError>;
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect(err.error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: 'messages[2].content: must not be empty' } });
  });

  it('streams Anthropic\'s events, a block per tool call, with usage in message_delta; the SDK assembles the message', async () => {
    downstream.stream = [
      chunk({ contentDelta: 'Let me look.' }),
      chunk({ toolCallDeltas: [{ index: 0, id: 't1', name: 'lookup', argumentsJsonDelta: '{"id":' }] }),
      chunk({ toolCallDeltas: [{ index: 0, id: '', name: '', argumentsJsonDelta: '7}' }] }),
      chunk({ finishReason: FinishReason.FINISH_REASON_TOOL_CALLS, usage: USAGE, routing: ROUTING }),
    ];
    const stream = anthropic().messages.stream({ model: 'chat', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] });
    const types: string[] = [];
    for await (const ev of stream) types.push(ev.type);
    expect(types).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    const final = await stream.finalMessage();
    expect(final.content).toEqual([
      { type: 'text', text: 'Let me look.', citations: null },
      { type: 'tool_use', id: 't1', name: 'lookup', input: { id: 7 } },
    ].map((b) => expect.objectContaining(b.type === 'text' ? { type: 'text', text: 'Let me look.' } : b)));
    expect(final.stop_reason).toBe('tool_use');
    // As Anthropic reports it: input_tokens without the cache reads and writes, which come beside it.
    expect(final.usage).toEqual({ input_tokens: 11, cache_read_input_tokens: 8, cache_creation_input_tokens: 2, output_tokens: 34 });
  });

  it('answers JSON in Anthropic\'s shape', async () => {
    const m = await anthropic().messages.create({ model: 'chat', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
    expect(m).toMatchObject({ type: 'message', role: 'assistant', model: 'small-fast', content: [{ type: 'text', text: 'Hello, world.' }], stop_reason: 'end_turn', usage: { input_tokens: 11, cache_read_input_tokens: 8, cache_creation_input_tokens: 2, output_tokens: 34 } });
  });
});

describe('embeddings and models', () => {
  it('embeds with the SDK\'s default base64 encoding and with floats', async () => {
    downstream.embedResult = async () =>
      ExecuteEmbedResponse.fromPartial({ response: { id: 'e1', model: 'embed-small', provider: 'sim-openai', embeddings: [{ index: 0, values: [0.5, -0.25] }, { index: 1, values: [1, 2] }], usage: { inputTokens: 3 } } });
    const viaSdk = await openai().embeddings.create({ model: 'embeddings', input: ['a', 'b'] });
    expect(viaSdk.data.map((d) => d.embedding)).toEqual([[0.5, -0.25], [1, 2]]);
    expect(viaSdk.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 });
    const floats = JSON.parse((await post('/v1/embeddings', { model: 'embeddings', input: 'a', encoding_format: 'float' })).body);
    expect(floats.data[0].embedding).toEqual([0.5, -0.25]);
    expect(downstream.calls.planRoute.map((c) => c.req.modelOrRoute)).toEqual(['embeddings', 'embeddings']);
    const tokens = await post('/v1/embeddings', { model: 'embeddings', input: [1, 2, 3] });
    expect(JSON.parse(tokens.body).error).toMatchObject({ param: 'input' });
  });

  it('lists what the key may name, in each SDK\'s shape; retrieving an unknown one is 404', async () => {
    const list = await openai().models.list();
    expect(list.data.map((m) => [m.id, m.owned_by])).toEqual([['chat', 'llmgateway'], ['small-fast', 'sim-openai']]);
    expect(downstream.calls.listModels[0]!.req).toEqual({ tenantId: 'acme', tier: 'startup' });
    expect((await openai().models.retrieve('small-fast')).id).toBe('small-fast');
    await expect(openai().models.retrieve('nope')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const a = await anthropic().models.list();
    expect(a.data.map((m) => m.id)).toEqual(['chat', 'small-fast']);
  });
});
