import { status } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVICE_NAMES } from '@llmgw/runtime';
import { AttemptOutcome, EmbedRequest, FinishReason, Routing, UsageGroupBy, type EmbedResponse } from '@llmgw/proto/v1';
import { bearer, chat, eventually, getUsage, KEYS, userChat, useTestMesh } from '../src/harness.js';

const mesh = useTestMesh();

describe('the mesh, end to end over gRPC, against real Redis and NATS', () => {
  it('answers a good request with content, usage and routing', async () => {
    const res = await chat(mesh().gateway, KEYS.enterprise, userChat('What is the capital of France?'));
    if (!res.ok) throw res.error;
    const r = res.value;
    expect(r.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.model).toBe('small-fast');
    expect(r.provider).toBe('sim-openai');
    expect(r.message?.content).toContain('What is the capital');
    expect(r.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
    expect(r.usage?.inputTokens).toBeGreaterThan(5);
    expect(r.usage?.outputTokens).toBeGreaterThan(3);
    // 0.15 $/M in, 0.60 $/M out, rounded once to whole micro-dollars.
    const expected = Math.round((r.usage!.inputTokens * 0.15 + r.usage!.outputTokens * 0.6));
    expect(r.usage?.costMicros).toBe(expected);
    expect(r.usage?.costUsd).toBeCloseTo(expected / 1e6, 12);
    expect(r.routing).toMatchObject({ rule: 'default', chosenModel: 'small-fast', fallbackUsed: false, route: 'chat' });
    expect(r.routing?.attempts).toHaveLength(1);
    expect(r.routing?.attempts[0]?.outcome).toBe(AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS);
  });

  it('tells an admitted caller its tightest limit in the trailers', async () => {
    const trailers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const call = mesh().gateway.chat(userChat('hello'), bearer(KEYS.enterprise), { deadline: Date.now() + 10_000 }, (err) => err && reject(err));
      call.on('status', (st: { metadata: { getMap(): Record<string, unknown> } }) => resolve(st.metadata.getMap()));
    });
    expect(trailers).toMatchObject({ 'x-ratelimit-limit': expect.any(String), 'x-ratelimit-name': expect.stringMatching(/^tenant:/) });
    expect(Number(trailers['x-ratelimit-remaining'])).toBeLessThan(Number(trailers['x-ratelimit-limit']));
  });

  it('refuses a bad key with UNAUTHENTICATED and calls no provider', async () => {
    const before = mesh().simulator.stats().totalRequests;
    const res = await chat(mesh().gateway, 'sk-not-a-real-key-000000', userChat('hello'));
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.error.code).toBe(status.UNAUTHENTICATED);
    expect(res.error.details).toMatch(/API key/);
    expect(mesh().simulator.stats().totalRequests).toBe(before);
  });

  it('refuses an empty message list with INVALID_ARGUMENT naming the field', async () => {
    const res = await chat(mesh().gateway, KEYS.enterprise, userChat('x', { messages: [] }));
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.error.code).toBe(status.INVALID_ARGUMENT);
    expect(res.error.details).toMatch(/^messages: /);
  });

  it.each([
    ['max_tokens over the route cap', { maxTokens: 5000 }, /max_tokens: 5000 is over the cap of 2048/],
    ['temperature out of range', { temperature: 2.5 }, /temperature: 2.5 is out of range/],
    ['an unknown route', { route: 'nope' }, /route: unknown route "nope"/],
  ])('refuses %s with INVALID_ARGUMENT', async (_name, extra, message) => {
    const res = await chat(mesh().gateway, KEYS.enterprise, userChat('hello', extra));
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.error.code).toBe(status.INVALID_ARGUMENT);
    expect(res.error.details).toMatch(message);
  });

  it('names a 10 KB unknown route without echoing it: INVALID_ARGUMENT, a short message', async () => {
    const route = 'r'.repeat(10_000);
    const res = await chat(mesh().gateway, KEYS.enterprise, userChat('hello', { route }));
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.error.code).toBe(status.INVALID_ARGUMENT);
    expect(res.error.details).toMatch(/^route: unknown route "r{64}"… \(9936 more characters\)$/);
  });

  it('refuses a request over the 4 MiB receive limit with RESOURCE_EXHAUSTED, and goes on serving', async () => {
    const res = await chat(mesh().gateway, KEYS.enterprise, userChat('x'.repeat(5 * 1024 * 1024)));
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect((await chat(mesh().gateway, KEYS.enterprise, userChat('hello'))).ok).toBe(true);
  });

  it('refuses an unknown role with INVALID_ARGUMENT naming the message', async () => {
    const req = userChat('x', { messages: [{ role: 0, content: 'hi', name: '', toolCalls: [], toolCallId: '' }] });
    const res = await chat(mesh().gateway, KEYS.enterprise, req);
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.error.details).toMatch(/^messages\[0\]\.role: unknown role/);
  });

  it('answers from the fallback model when the primary is dead, and says so', async () => {
    const res = await chat(mesh().gateway, KEYS.enterprise, userChat('hello there', { route: 'fallback' }));
    if (!res.ok) throw res.error;
    const r = res.value;
    expect(r.model).toBe('small-fast');
    expect(r.routing?.fallbackUsed).toBe(true);
    expect(r.routing?.chosenModel).toBe('small-fast');
    expect(r.routing?.attempts.map((a) => [a.model, a.outcome])).toEqual([
      ['dead-primary', AttemptOutcome.ATTEMPT_OUTCOME_FAILED],
      ['small-fast', AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS],
    ]);
    expect(r.routing?.attempts[0]?.providerStatus).toBe(500);
    expect(r.routing?.attempts[0]?.error).not.toBe('');
  });

  it('fails with UNAVAILABLE when every attempt fails, with the routing record in x-routing-bin and the usage counted', async () => {
    const res = await chat(mesh().gateway, KEYS.enterprise, userChat('nobody home', { route: 'all-dead' }));
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.error.code).toBe(status.UNAVAILABLE);
    expect(res.error.details).toMatch(/500/);
    const raw = res.error.metadata.get('x-routing-bin')[0];
    expect(raw).toBeInstanceOf(Buffer);
    const routing = Routing.decode(raw as Buffer);
    expect(routing).toMatchObject({ rule: 'only-dead', route: 'all-dead', fallbackUsed: false });
    expect(routing.attempts.map((a) => [a.model, a.outcome, a.providerStatus])).toEqual([['dead-primary', AttemptOutcome.ATTEMPT_OUTCOME_FAILED, 500]]);
  });

  it('admits 120 requests a minute for a 120-rpm tenant and refuses the 121st with retry-after-ms', async () => {
    const results = await Promise.all(Array.from({ length: 120 }, (_, i) => chat(mesh().gateway, KEYS.startup, userChat(`burst ${i}`))));
    expect(results.filter((r) => r.ok)).toHaveLength(120);
    const before = mesh().simulator.stats().totalRequests;
    const res = await chat(mesh().gateway, KEYS.startup, userChat('one too many'));
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(res.error.details).toMatch(/requests_per_minute/);
    const retryAfter = Number(res.error.metadata.get('retry-after-ms')[0]);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60_000);
    expect(res.error.metadata.get('x-ratelimit-limit')[0]).toBe('120');
    expect(res.error.metadata.get('x-ratelimit-remaining')[0]).toBe('0');
    expect(mesh().simulator.stats().totalRequests).toBe(before);
  });

  it('after a few hundred requests, GetUsage totals equal the sum of the responses exactly', async () => {
    const total = { requests: 0, input: 0, output: 0, micros: 0 };
    const N = 300;
    for (let batch = 0; batch < N / 25; batch++) {
      const results = await Promise.all(
        Array.from({ length: 25 }, (_, i) => chat(mesh().gateway, KEYS.load, userChat(`request ${batch}-${i} ${'word '.repeat(i)}[[tokens:${5 + i}]]`))),
      );
      for (const r of results) {
        if (!r.ok) throw r.error;
        total.requests++;
        total.input += r.value.usage!.inputTokens;
        total.output += r.value.usage!.outputTokens;
        total.micros += r.value.usage!.costMicros;
      }
    }
    const usage = await eventually(
      () => getUsage(mesh().usage, KEYS.load, {}),
      (r) => r.ok && r.value.total?.requests === N,
      15_000,
    );
    if (!usage.ok) throw usage.error;
    expect(usage.value.total).toMatchObject({ requests: N, inputTokens: total.input, outputTokens: total.output, costMicros: total.micros });
    const byModel = await getUsage(mesh().usage, KEYS.load, { groupBy: [UsageGroupBy.USAGE_GROUP_BY_MODEL] });
    if (!byModel.ok) throw byModel.error;
    expect(byModel.value.rows.map((r) => [r.model, r.requests])).toEqual([['small-fast', N]]);
  });

  it('embeds texts through the mesh with usage and cost', async () => {
    const res = await new Promise<{ err: Error | null; value?: EmbedResponse }>((resolve) =>
      mesh().gateway.embed(
        EmbedRequest.fromPartial({ route: 'embeddings', inputs: ['first text', 'a second, longer text to embed'] }),
        bearer(KEYS.enterprise),
        { deadline: Date.now() + 10_000 },
        (err, value) => resolve({ err, value }),
      ),
    );
    if (res.err) throw res.err;
    const r = res.value!;
    expect(r.model).toBe('embed-small');
    expect(r.embeddings.map((e) => e.index)).toEqual([0, 1]);
    expect(r.embeddings[0]!.values.length).toBeGreaterThan(8);
    expect(r.embeddings[0]!.values).not.toEqual(r.embeddings[1]!.values);
    expect(r.usage?.inputTokens).toBeGreaterThan(4);
    expect(r.usage?.outputTokens).toBe(0);
    expect(r.usage?.costMicros).toBe(Math.round(r.usage!.inputTokens * 0.02));
  });

  it('logs request id and tenant on the lines of a request, and never the prompt or the key', async () => {
    const md = bearer(KEYS.enterprise);
    md.set('x-request-id', 'client-req-4711');
    const prompt = 'PROMPT-MUST-NOT-BE-LOGGED-93bd';
    await new Promise<void>((resolve) =>
      mesh().gateway.chat(userChat(prompt, { maxTokens: 99_999 }), md, { deadline: Date.now() + 5_000 }, () => resolve()),
    );
    await chat(mesh().gateway, KEYS.enterprise, userChat(prompt));
    await new Promise((r) => setTimeout(r, 300));
    const logs = Object.fromEntries(
      SERVICE_NAMES.map((n) => [n, readFileSync(join(mesh().logDir, `${n}.log`), 'utf8')]),
    );
    const mine = logs.edge!.split('\n').filter((l) => l.includes('client-req-4711')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(mine.length).toBeGreaterThan(0);
    for (const line of mine) expect(line).toMatchObject({ requestId: expect.any(String), tenantId: 'enterprise-co', service: 'edge' });
    for (const [service, text] of Object.entries(logs)) {
      expect(text, service).not.toContain(prompt);
      for (const key of Object.values(KEYS)) expect(text, service).not.toContain(key);
    }
  });

  it('shows a tenant only its own usage; an admin sees every tenant', async () => {
    const denied = await getUsage(mesh().usage, KEYS.other, { tenantId: 'loadtest' });
    expect(denied.ok).toBe(false);
    if (!denied.ok) expect(denied.error.code).toBe(status.PERMISSION_DENIED);
    const admin = await getUsage(mesh().usage, KEYS.admin, { groupBy: [UsageGroupBy.USAGE_GROUP_BY_TENANT] });
    if (!admin.ok) throw admin.error;
    expect(admin.value.rows.map((r) => r.tenantId)).toEqual(expect.arrayContaining(['enterprise-co', 'loadtest']));
  });
});
