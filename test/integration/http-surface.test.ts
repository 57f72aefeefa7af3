import Anthropic from '@anthropic-ai/sdk';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNatsBus, Subjects } from '@llmgw/events';
import { silentLogger } from '@llmgw/logging';
import { METRICS_PORT_OFFSET, SERVICE_NAMES, type ServiceName } from '@llmgw/runtime';
import { Role, UsageRecorded } from '@llmgw/proto/v1';
import { chat, chatStream, eventually, KEYS, startTestMesh, TEST_CONFIG, userChat, type TestMesh } from '../src/harness.js';

/*
 * The official SDKs, unchanged, against the mesh's HTTP surface (not against the simulator):
 * every answer here went through auth, router, quota and the executor, and was billed.
 */
let mesh: TestMesh;
beforeAll(async () => {
  mesh = await startTestMesh(TEST_CONFIG, {}, { metrics: true });
}, 60_000);
afterAll(async () => {
  await mesh?.stop();
});

const openai = (apiKey: string = KEYS.enterprise) => new OpenAI({ apiKey, baseURL: mesh.httpBaseUrl, maxRetries: 0 });
const anthropic = (apiKey: string = KEYS.enterprise) => new Anthropic({ apiKey, baseURL: mesh.httpBaseUrl.replace(/\/v1$/, ''), maxRetries: 0 });
type Extended = { llmgw: { cost_micros: number; routing: { fallback_used: boolean; chosen_model: string; attempts: { model: string; outcome: string }[] } } };

describe('the OpenAI SDK against the mesh', () => {
  it('chats through a route named in `model`, billed by the simulator', async () => {
    const before = (await mesh.simulator.bill()).total.requests;
    const r = await openai().chat.completions.create({ model: 'chat', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there [[tokens:12]]' }] });
    expect(r.choices[0]?.message.content).toMatch(/\S/);
    expect(r.choices[0]?.finish_reason).toBe('stop');
    expect(r.usage?.completion_tokens).toBe(12);
    expect(r.model).toBe('small-fast');
    expect((r as unknown as Extended).llmgw.cost_micros).toBeGreaterThan(0);
    expect((await mesh.simulator.bill()).total.requests).toBe(before + 1);
  });

  it('pins a model named in `model` where policy allows it, and refuses one it does not', async () => {
    const r = await openai().chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'hi [[tokens:3]]' }] });
    expect(r.model).toBe('claude');
    expect((r as unknown as Extended).llmgw.routing.chosen_model).toBe('claude');
    // The startup tier may not use large-reasoning.
    await expect(openai(KEYS.startup).chat.completions.create({ model: 'large-reasoning', messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
    const unknown = await openai().chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect((unknown as InstanceType<typeof OpenAI.NotFoundError>).error).toMatchObject({ code: 'model_not_found', param: 'model' });
  });

  it('streams with usage in the last chunk and [DONE]', async () => {
    const stream = await openai().chat.completions.create({ model: 'chat', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Tell me about streams [[tokens:30]]' }] });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text.length).toBeGreaterThan(10);
    expect(chunks.filter((c) => c.choices[0]?.delta.content).length).toBeGreaterThan(3);
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe('stop');
    expect(chunks.at(-1)?.usage?.completion_tokens).toBe(30);
    expect(chunks.slice(0, -1).every((c) => !c.usage)).toBe(true);
  });

  it('calls tools and carries the tool result back', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'lookup_order', description: 'Find an order', parameters: { type: 'object', properties: { order_id: { type: 'string' } }, required: ['order_id'] } } },
    ];
    const first = await openai().chat.completions.create({ model: 'chat', tools, tool_choice: 'auto', messages: [{ role: 'user', content: 'Where is my order? [[tool]]' }] });
    const call = first.choices[0]?.message.tool_calls?.[0];
    expect(first.choices[0]?.finish_reason).toBe('tool_calls');
    expect(call?.type === 'function' && call.function.name).toBe('lookup_order');
    const args = JSON.parse(call?.type === 'function' ? call.function.arguments : '{}');
    expect(typeof args.order_id).toBe('string');
    const second = await openai().chat.completions.create({
      model: 'chat',
      tools,
      messages: [
        { role: 'user', content: 'Where is my order? [[tool]]' },
        { role: 'assistant', content: null, tool_calls: first.choices[0]!.message.tool_calls! },
        { role: 'tool', tool_call_id: call!.id, content: '{"status":"shipped"}' },
      ],
    });
    expect(second.choices[0]?.finish_reason).toBe('stop');
    expect(second.choices[0]?.message.content).toMatch(/\S/);
  });

  it('returns JSON matching a json_schema response format', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string' }, population: { type: 'integer' } }, required: ['city', 'population'], additionalProperties: false };
    const r = await openai().chat.completions.create({
      model: 'chat',
      response_format: { type: 'json_schema', json_schema: { name: 'city', schema, strict: true } },
      messages: [{ role: 'user', content: 'The largest city of France, as JSON.' }],
    });
    const value = JSON.parse(r.choices[0]?.message.content ?? '');
    expect(typeof value.city).toBe('string');
    expect(Number.isInteger(value.population)).toBe(true);
  });

  it('embeds (the SDK asks for base64 and decodes it)', async () => {
    const r = await openai().embeddings.create({ model: 'embeddings', input: ['first text', 'second text'] });
    expect(r.data).toHaveLength(2);
    expect(r.data[0]?.embedding.length).toBeGreaterThan(100);
    expect(r.data[0]?.embedding.every((v) => Number.isFinite(v))).toBe(true);
    expect(r.usage.prompt_tokens).toBeGreaterThan(0);
  });

  it('lists the routes and the models this key may use', async () => {
    const startup = (await openai(KEYS.startup).models.list()).data.map((m) => m.id);
    const enterprise = (await openai().models.list()).data.map((m) => m.id);
    expect(startup).toEqual(expect.arrayContaining(['chat', 'fallback', 'embeddings', 'small-fast', 'claude']));
    expect(startup).not.toContain('large-reasoning');
    expect(enterprise).toContain('large-reasoning');
  });

  it('a bad key is the SDK\'s AuthenticationError', async () => {
    await expect(openai('sk-test-nobody-0000000000000').chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it('an exhausted quota is the SDK\'s RateLimitError with retry-after', async () => {
    const client = openai(KEYS.trickle);
    for (let i = 0; i < 2; i++) await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: `hi ${i} [[tokens:2]]` }] });
    const err = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'one too many' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const e = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(Number(e.headers?.get('retry-after'))).toBeGreaterThan(0);
    expect(e.headers?.get('x-ratelimit-name')).toBe('tenant:requests_per_minute');
    expect(e.headers?.get('x-ratelimit-remaining')).toBe('0');
  });

  it('a failing primary falls back, visible in the routing header and the extension field', async () => {
    const { data, response } = await openai().chat.completions.create({ model: 'fallback', messages: [{ role: 'user', content: 'hi [[tokens:4]]' }] }).withResponse();
    const header = JSON.parse(response.headers.get('x-llmgw-routing') ?? '{}');
    expect(header).toMatchObject({ route: 'fallback', fallback_used: true, chosen_model: 'small-fast' });
    expect(header.attempts.map((a: { model: string; outcome: string; reason: string }) => [a.model, a.outcome, a.reason])).toEqual([['dead-primary', 'failed', 'http_5xx'], ['small-fast', 'success', '']]);
    expect((data as unknown as Extended).llmgw.routing.fallback_used).toBe(true);
    const allDead = await openai().chat.completions.create({ model: 'all-dead', messages: [{ role: 'user', content: 'hi' }] }).catch((err: unknown) => err);
    expect(allDead).toBeInstanceOf(OpenAI.InternalServerError);
    expect(JSON.parse((allDead as InstanceType<typeof OpenAI.APIError>).headers?.get('x-llmgw-routing') ?? '{}').attempts[0]).toMatchObject({ model: 'dead-primary', outcome: 'failed' });
  });

  it('a caller that aborts a stream cancels the upstream request', async () => {
    mesh.simulator.resetStats();
    const controller = new AbortController();
    const stream = await openai().chat.completions.create({ model: 'chat', stream: true, max_tokens: 2000, messages: [{ role: 'user', content: 'a very long answer please [[tokens:3000]]' }] }, { signal: controller.signal });
    let seen = 0;
    for await (const _c of stream) {
      if (++seen === 3) {
        controller.abort();
        break;
      }
    }
    // 3000 tokens at 5 ms a chunk would take seconds: the upstream must be gone long before that.
    expect(await eventually(async () => mesh.simulator.stats().openRequests, (n) => n === 0, 1_500)).toBe(0);
  });
});

describe('the Anthropic SDK against the mesh', () => {
  it('sends messages with a system prompt and gets Anthropic\'s message back', async () => {
    const m = await anthropic().messages.create({ model: 'anthropic', max_tokens: 64, system: 'Be brief.', messages: [{ role: 'user', content: 'Hello [[tokens:8]]' }] });
    expect(m).toMatchObject({ type: 'message', role: 'assistant', model: 'claude', stop_reason: 'end_turn' });
    expect(m.usage.output_tokens).toBe(8);
    expect(m.content[0]?.type === 'text' && m.content[0].text).toMatch(/\S/);
  });

  it('streams, and the SDK assembles the final message with usage', async () => {
    const stream = anthropic().messages.stream({ model: 'chat', max_tokens: 64, messages: [{ role: 'user', content: 'Tell me a story [[tokens:20]]' }] });
    const types = new Set<string>();
    for await (const ev of stream) types.add(ev.type);
    expect([...types]).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    const final = await stream.finalMessage();
    expect(final.usage.output_tokens).toBe(20);
    expect(final.usage.input_tokens).toBeGreaterThan(0);
  });

  it('uses tools', async () => {
    const m = await anthropic().messages.create({
      model: 'anthropic',
      max_tokens: 200,
      tools: [{ name: 'lookup_order', description: 'Find an order', input_schema: { type: 'object', properties: { order_id: { type: 'string' } }, required: ['order_id'] } }],
      messages: [{ role: 'user', content: 'Where is my order? [[tool]]' }],
    });
    expect(m.stop_reason).toBe('tool_use');
    const use = m.content.find((b) => b.type === 'tool_use');
    expect(use?.type === 'tool_use' && use.name).toBe('lookup_order');
  });

  it('a bad key and an exhausted quota are the SDK\'s typed errors', async () => {
    await expect(anthropic('sk-test-nobody-0000000000000').messages.create({ model: 'chat', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(
      Anthropic.AuthenticationError,
    );
    // The trickle tenant spent its two requests of this minute above.
    const err = await anthropic(KEYS.trickle).messages.create({ model: 'chat', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect(Number((err as InstanceType<typeof Anthropic.RateLimitError>).headers?.get('retry-after'))).toBeGreaterThan(0);
  });
});

/** Every sample of a service's /metrics, by series (name and labels). */
async function samples(service: ServiceName): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${mesh.metricsBase! + METRICS_PORT_OFFSET[service]}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** Process metrics and timings differ between any two requests; counts must not. */
const COMPARABLE = (series: string) => !/^(process_|nodejs_)/.test(series) && !/_(sum|bucket)\{|_(sum|bucket)$/.test(series) && !series.includes('_seconds');

/** The tenant's quota counters in Redis (strings: token and dollar budgets, window sums). */
async function quotaCounters(tenant: string): Promise<Map<string, number>> {
  const redis = new Redis(mesh.redis.url);
  try {
    const out = new Map<string, number>();
    for (const key of await redis.keys(`llmgw:quota:{${tenant}}:c:*`)) {
      if ((await redis.type(key)) === 'string') out.set(key, Number(await redis.get(key)));
    }
    return out;
  } finally {
    redis.disconnect();
  }
}

/** What one request changed in each service's counters and in the tenant's quota counters. */
async function deltas(tenant: string, run: () => Promise<string>): Promise<{ requestId: string; changed: Record<ServiceName, Record<string, number>>; counters: Record<string, number> }> {
  const before = await Promise.all(SERVICE_NAMES.map(samples));
  const countersBefore = await quotaCounters(tenant);
  const requestId = await run();
  const event = await eventually(() => usageEvent(requestId), (e) => e !== undefined, 10_000);
  expect(event).toBeDefined();
  // Quota and the accountant consume the event asynchronously: wait until every counter has settled.
  let after = await Promise.all(SERVICE_NAMES.map(samples));
  for (let settled = false; !settled; ) {
    await new Promise((r) => setTimeout(r, 300));
    const again = await Promise.all(SERVICE_NAMES.map(samples));
    settled = again.every((m, i) => [...m].filter(([k]) => COMPARABLE(k)).every(([k, v]) => after[i]!.get(k) === v));
    after = again;
  }
  const changed = {} as Record<ServiceName, Record<string, number>>;
  SERVICE_NAMES.forEach((name, i) => {
    changed[name] = {};
    for (const [k, v] of after[i]!) {
      const d = v - (before[i]!.get(k) ?? 0);
      if (COMPARABLE(k) && d !== 0) changed[name][k] = d;
    }
  });
  const counters: Record<string, number> = {};
  for (const [k, v] of await quotaCounters(tenant)) if (v !== (countersBefore.get(k) ?? 0)) counters[k] = v - (countersBefore.get(k) ?? 0);
  return { requestId, changed, counters };
}

async function usageEvent(requestId: string): Promise<UsageRecorded | undefined> {
  const bus = await connectNatsBus({ url: mesh.nats.url, name: 'http-surface-test', logger: silentLogger() });
  try {
    let found: UsageRecorded | undefined;
    await bus.readAll(Subjects.usageRecorded, (data) => {
      const ev = UsageRecorded.decode(data);
      if (ev.requestId === requestId) found = ev;
    });
    return found;
  } finally {
    await bus.close();
  }
}

async function reservation(tenant: string, requestId: string): Promise<Record<string, unknown>> {
  const redis = new Redis(mesh.redis.url);
  try {
    return JSON.parse((await redis.get(`llmgw:quota:{${tenant}}:r:${requestId}`)) ?? 'null') as Record<string, unknown>;
  } finally {
    redis.disconnect();
  }
}

/** The event without what differs between any two requests: ids, time and latency. */
function comparable(ev: UsageRecorded | undefined) {
  const { eventId: _e, requestId: _r, occurredAt: _o, latencyMs: _l, ...rest } = ev!;
  return rest;
}

describe('same accounting over HTTP as over gRPC', () => {
  const prompt = 'Compare the two doors [[tokens:17]]';

  it.each([
    ['a chat', false],
    ['a stream', true],
  ])('%s yields the same usage event, quota reservation and metrics', async (_name, stream) => {
    const viaGrpc = await deltas('startup-co', async () => {
      const req = userChat(prompt, { route: 'chat', maxTokens: 40, temperature: 0.2 });
      req.messages.unshift({ role: Role.ROLE_SYSTEM, content: 'Be exact.', name: '', toolCalls: [], toolCallId: '' });
      if (stream) {
        const r = await chatStream(mesh.gateway, KEYS.startup, req);
        expect(r.error).toBeUndefined();
        return r.chunks.at(-1)!.id;
      }
      const r = await chat(mesh.gateway, KEYS.startup, req);
      if (!r.ok) throw r.error;
      return r.value.id;
    });
    const viaHttp = await deltas('startup-co', async () => {
      const body = { model: 'chat', max_tokens: 40, temperature: 0.2, messages: [{ role: 'system' as const, content: 'Be exact.' }, { role: 'user' as const, content: prompt }] };
      if (stream) {
        const { data, response } = await openai(KEYS.startup).chat.completions.create({ ...body, stream: true }).withResponse();
        for await (const _c of data);
        return response.headers.get('x-request-id')!;
      }
      return (await openai(KEYS.startup).chat.completions.create(body)).id;
    });
    // The usage event, field by field (ids, time and latency aside).
    const [grpcEvent, httpEvent] = await Promise.all([usageEvent(viaGrpc.requestId), usageEvent(viaHttp.requestId)]);
    expect(comparable(httpEvent)).toEqual(comparable(grpcEvent));
    expect(httpEvent?.streamed).toBe(stream);
    // The quota reservation, as reserved and as reconciled.
    const [grpcHold, httpHold] = await Promise.all([reservation('startup-co', viaGrpc.requestId), reservation('startup-co', viaHttp.requestId)]);
    const { x: _x1, ...grpcRest } = grpcHold;
    const { x: _x2, ...httpRest } = httpHold;
    // The decision names the same limit; its `remaining` is one lower, the gRPC request being in the window too.
    const remainingAt = 4;
    expect((httpRest.d as number[])[remainingAt]).toBe((grpcRest.d as number[])[remainingAt]! - 1);
    (httpRest.d as number[])[remainingAt] = (grpcRest.d as number[])[remainingAt]!;
    expect(httpRest).toEqual(grpcRest);
    // And each budget counter moved by the same amount.
    expect(viaHttp.counters).toEqual(viaGrpc.counters);
    expect(Object.keys(viaGrpc.counters).some((k) => k.includes(':tpd:'))).toBe(true);
    // Every counter of every service behind the edge moved the same way.
    for (const name of SERVICE_NAMES.filter((n) => n !== 'edge')) expect({ [name]: viaHttp.changed[name] }).toEqual({ [name]: viaGrpc.changed[name] });
    expect(viaHttp.changed['provider-executor']['llmgw_requests_total{route="chat",outcome="ok",service="provider-executor"}']).toBe(1);
    expect(viaHttp.changed.quota['llmgw_quota_decisions_total{decision="allowed",limit="",service="quota"}']).toBe(1);
    // The edge counts each door on its own.
    const method = stream ? 'ChatStream' : 'Chat';
    expect(viaGrpc.changed.edge[`grpc_server_handled_total{method="${method}",code="OK",service="edge"}`]).toBe(1);
    expect(viaHttp.changed.edge['llmgw_http_requests_total{endpoint="chat_completions",status="200",service="edge"}']).toBe(1);
  });
});
