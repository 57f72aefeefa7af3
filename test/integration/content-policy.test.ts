import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Message, Role, Tool } from '@llmgw/proto/v1';
import { chat, chatStream, eventually, startTestMesh, userChat, type TestMesh } from '../src/harness.js';

/*
 * Tenant content policies through the mesh: the edge blocks, redacts before the provider, or keeps
 * matches out of its logs only; the simulator shows what a provider would have received.
 */
const FIXTURE = fileURLToPath(new URL('../fixtures/content-policy.test.yaml', import.meta.url));
const KEY = 'sk-policy-acme-00000000000000';
const BETA_KEY = 'sk-policy-beta-00000000000000';
/** Every sensitive string this suite sends: none may appear in any service's log. */
const CARD = '4111 1111 1111 1111';
const SECRET = 'sk-proj-abcdefghijklmnopqrstuvwxyz123456';
const SSN = '123-45-6789';
const EMAIL = 'jane.doe@example.com';
const OTHER_EMAIL = 'ops@example.org';
const PHONE = '+1 415 555 0132';
const MATCHES = [CARD, SECRET, SSN, EMAIL, OTHER_EMAIL, PHONE, 'Project Bluebird'];

let mesh: TestMesh;
beforeAll(async () => {
  mesh = await startTestMesh(FIXTURE, {}, { metrics: true });
}, 60_000);
afterAll(async () => {
  if (!mesh) return;
  await mesh.stop();
  // After stop: every line the services wrote is in its file.
  const logs = readdirSync(mesh.logDir).map((f) => [f, readFileSync(join(mesh.logDir, f), 'utf8')] as const);
  expect(logs.length).toBeGreaterThan(0);
  for (const [file, text] of logs) for (const m of MATCHES) expect(text.includes(m), `${m} in ${file}`).toBe(false);
});

const edgeLog = () => readFileSync(join(mesh.logDir, 'edge.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
const userTexts = () => mesh.simulator.received().flatMap((r) => (r.body['messages'] as { role: string; content: string }[]).filter((m) => m.role === 'user').map((m) => m.content));

describe('content policy through the mesh', () => {
  it.each([
    ['a payment card', `charge ${CARD} now`, 'chat', status.PERMISSION_DENIED, 'content policy "guard" blocks this request: it matched "card"'],
    ['a secret', `my key is ${SECRET}`, 'chat', status.PERMISSION_DENIED, 'content policy "guard" blocks this request: it matched "secret"'],
    ['a deny pattern', 'what is Project Bluebird?', 'chat', status.PERMISSION_DENIED, 'content policy "guard" blocks this request: it matched "codename"'],
    ['an SSN on the strict route', `ssn ${SSN}`, 'strict', status.INVALID_ARGUMENT, 'content policy "strict" blocks this request: it matched "national_id"'],
  ])('blocks %s with the policy\'s status, naming it and not the match, and nothing is billed', async (_name, text, route, code, message) => {
    const bill = mesh.simulator.bill();
    const received = mesh.simulator.received().length;
    const r = await chat(mesh.gateway, KEY, userChat(text, { route }));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe(code);
    expect(r.error.details).toBe(message);
    expect(mesh.simulator.bill()).toEqual(bill);
    expect(mesh.simulator.received()).toHaveLength(received);
  });

  it('sends the provider placeholders for redacted e-mail addresses (the same address, the same placeholder) and answers normally', async () => {
    mesh.simulator.resetStats();
    const req = userChat('', {
      route: 'chat',
      messages: [Message.fromPartial({ role: Role.ROLE_SYSTEM, content: `The user is ${EMAIL}.` }), Message.fromPartial({ role: Role.ROLE_USER, content: `Mail ${EMAIL} and ${OTHER_EMAIL}` })],
    });
    const r = await chat(mesh.gateway, KEY, req);
    if (!r.ok) throw r.error;
    expect(r.value.message?.content).toContain('Mail [EMAIL_1] and [EMAIL_2]');
    expect(r.value.usage?.outputTokens).toBeGreaterThan(0);
    const [sent] = mesh.simulator.received();
    expect(sent?.body['messages']).toEqual([
      { role: 'system', content: 'The user is [EMAIL_1].' },
      { role: 'user', content: 'Mail [EMAIL_1] and [EMAIL_2]' },
    ]);
  });

  it('sends the provider a log-only match as it is, and the edge\'s prompt log and enforcement lines without it', async () => {
    mesh.simulator.resetStats();
    const r = await chat(mesh.gateway, KEY, userChat(`call me on ${PHONE}`, { route: 'chat' }));
    if (!r.ok) throw r.error;
    expect(userTexts()).toEqual([`call me on ${PHONE}`]);
    // The simulator echoes the prompt: the caller's answer keeps it too (log-only).
    expect(r.value.message?.content).toContain(PHONE);
    const promptLog = await eventually(
      async () => edgeLog().filter((l) => l.msg === 'prompt logged by tenant policy'),
      (lines) => lines.some((l) => JSON.stringify(l).includes('call me on [PHONE_1]')),
    );
    expect(JSON.stringify(promptLog.at(-1))).toContain('[PHONE_1]');
    const enforced = edgeLog().filter((l) => l.msg === 'content policy enforced');
    expect(enforced).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ policy: 'guard', detector: 'phone', action: 'redact_logs', direction: 'request', matches: 1 }),
        expect.objectContaining({ policy: 'guard', detector: 'phone', action: 'redact_logs', direction: 'response', matches: 1 }),
        expect.objectContaining({ policy: 'guard', detector: 'card', action: 'block', direction: 'request' }),
      ]),
    );
  });

  it('rewrites a streamed answer as it flows: the address the model repeats reaches the caller as its placeholder, as in the unary answer', async () => {
    // The simulator echoes the first words of the prompt, then (with [[long]]) fills up to max_tokens.
    const text = `Please repeat: write to ${EMAIL} about the invoice [[long]]`;
    const unary = await chat(mesh.gateway, BETA_KEY, userChat(text, { route: 'chat' }));
    if (!unary.ok) throw unary.error;
    expect(unary.value.message?.content).toContain('write to [EMAIL_1] about');
    const streamed = await chatStream(mesh.gateway, BETA_KEY, userChat(text, { route: 'chat' }));
    expect(streamed.error).toBeUndefined();
    const joined = streamed.chunks.map((c) => c.contentDelta).join('');
    expect(joined).toBe(unary.value.message?.content);
    expect(joined.length).toBeGreaterThan(256);
    expect(streamed.chunks.some((c) => c.contentDelta.includes(EMAIL.slice(0, 8)))).toBe(false);
    expect(streamed.chunks.at(-1)?.routing?.route).toBe('chat');
  });

  it('ends a streamed answer at a blocking match before any of it is sent', async () => {
    const streamed = await chatStream(mesh.gateway, BETA_KEY, userChat(`${CARD} is my card [[long]]`, { route: 'chat' }));
    expect(streamed.error?.code).toBe(status.PERMISSION_DENIED);
    expect(streamed.error?.details).toBe('content policy "answers" blocks this response: it matched "card"');
    expect(streamed.chunks.map((c) => c.contentDelta).join('')).not.toContain('4111');
  });

  it('counts every enforcement by policy, detector, action and direction', async () => {
    const count = (policy: string, detector: string, action: string, direction: string) => mesh.metric('edge', 'llmgw_policy_enforcements_total', { policy, detector, action, direction });
    expect(await count('guard', 'card', 'block', 'request')).toBe(1);
    expect(await count('strict', 'national_id', 'block', 'request')).toBe(1);
    expect(await count('guard', 'email', 'redact', 'request')).toBe(1);
    expect(await count('guard', 'phone', 'redact_logs', 'response')).toBe(1);
    // One unary answer and one stream: each counted once, however many chunks it came in.
    expect(await count('answers', 'email', 'redact', 'response')).toBe(2);
    expect(await count('answers', 'card', 'block', 'response')).toBe(1);
  });

  it('sends the provider a tool call of the history with its arguments redacted: valid JSON, the placeholder of the same address in the contents', async () => {
    mesh.simulator.resetStats();
    const req = userChat('', {
      route: 'chat',
      messages: [
        Message.fromPartial({ role: Role.ROLE_USER, content: `Mail ${OTHER_EMAIL} and ${EMAIL}` }),
        Message.fromPartial({ role: Role.ROLE_ASSISTANT, toolCalls: [{ id: 'call-1', name: 'send_mail', argumentsJson: JSON.stringify({ to: [EMAIL], body: { text: 'hello' } }) }] }),
        Message.fromPartial({ role: Role.ROLE_TOOL, toolCallId: 'call-1', content: 'sent' }),
      ],
    });
    const r = await chat(mesh.gateway, KEY, req);
    if (!r.ok) throw r.error;
    const [sent] = mesh.simulator.received();
    const messages = sent?.body['messages'] as { role: string; tool_calls?: { function: { arguments: string } }[] }[];
    const args = messages.find((m) => m.role === 'assistant')?.tool_calls?.[0]?.function.arguments ?? '';
    expect(JSON.parse(args)).toEqual({ to: ['[EMAIL_2]'], body: { text: 'hello' } });
  });

  it('redacts the arguments of a tool call the model makes, unary and streamed (whole, just before the last message)', async () => {
    // The simulator's tool call (`[[tool]]`) takes a `const` of the tool's schema as it is.
    const tool = Tool.fromPartial({ name: 'send_mail', parametersJsonSchema: JSON.stringify({ type: 'object', properties: { to: { const: EMAIL } }, required: ['to'] }) });
    const req = () => userChat('mail them [[tool]]', { route: 'chat', tools: [tool] });
    const unary = await chat(mesh.gateway, BETA_KEY, req());
    if (!unary.ok) throw unary.error;
    expect(unary.value.message?.toolCalls.map((c) => JSON.parse(c.argumentsJson) as unknown)).toEqual([{ to: '[EMAIL_1]' }]);
    const streamed = await chatStream(mesh.gateway, BETA_KEY, req());
    expect(streamed.error).toBeUndefined();
    const withCalls = streamed.chunks.filter((c) => c.toolCallDeltas.length > 0);
    expect(withCalls).toHaveLength(1);
    expect(withCalls[0]?.toolCallDeltas).toEqual([expect.objectContaining({ index: 0, name: 'send_mail', argumentsJsonDelta: '{"to":"[EMAIL_1]"}' })]);
    expect(streamed.chunks.indexOf(withCalls[0]!)).toBe(streamed.chunks.length - 2);
    expect(streamed.chunks.at(-1)?.routing?.route).toBe('chat');
  });
});
