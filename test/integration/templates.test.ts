import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { Message, Role, UsageGroupBy, type ChatRequest, type ChatResponse } from '@llmgw/proto/v1';
import { chat, eventually, getUsage, startTestMesh, userChat, type TestMesh } from '../src/harness.js';

/*
 * Prompt templates through the mesh: the edge renders the version's system prompt and applies its
 * defaults before planning; the prompt version "<template>@<version>" is on the routing record
 * and in the usage the accountant aggregates.
 */
const FIXTURE = fileURLToPath(new URL('../fixtures/templates.test.yaml', import.meta.url));
const KEYS = { acme: 'sk-templates-acme-00000000000', admin: 'sk-templates-admin-0000000000' };
const QUESTION = 'Where is my order?';

let mesh: TestMesh;
beforeAll(async () => {
  mesh = await startTestMesh(FIXTURE);
}, 60_000);
afterAll(async () => {
  await mesh?.stop();
});

async function ask(req: ChatRequest): Promise<ChatResponse> {
  const r = await chat(mesh.gateway, KEYS.acme, req);
  if (!r.ok) throw r.error;
  return r.value;
}

describe('prompt templates', () => {
  it('renders the pinned or named version, applies its defaults, and records the prompt version on routing and usage', async () => {
    const pinned = await ask(userChat(QUESTION, { template: 'support-answer', templateVariables: { product: 'Acme Cloud' }, user: 'ann' }));
    expect(pinned.model).toBe('support-model');
    expect(pinned.routing).toMatchObject({ route: 'support', promptVersion: 'support-answer@v1' });
    const named = await ask(userChat(QUESTION, { template: 'support-answer', templateVersion: 'v2', templateVariables: { product: 'Acme Cloud', plan: 'enterprise' }, user: 'ann' }));
    expect(named.routing).toMatchObject({ route: 'support', promptVersion: 'support-answer@v2' });

    // The provider was sent the rendered system prompt: it counts exactly the tokens of the same
    // request written out by hand (the simulator counts what it receives).
    const byHand = await ask(
      userChat(QUESTION, { route: 'support', promptVersion: 'by-hand', messages: [Message.fromPartial({ role: Role.ROLE_SYSTEM, content: 'You help Acme Cloud customers on the enterprise plan. Be brief.' }), Message.fromPartial({ role: Role.ROLE_USER, content: QUESTION })] }),
    );
    expect(named.usage?.inputTokens).toBe(byHand.usage?.inputTokens);
    expect(named.usage?.inputTokens).toBeGreaterThan(pinned.usage?.inputTokens ?? Infinity);

    const rows = await eventually(
      async () => {
        const r = await getUsage(mesh.usage, KEYS.admin, { groupBy: [UsageGroupBy.USAGE_GROUP_BY_PROMPT_VERSION] });
        if (!r.ok) throw r.error;
        return r.value.rows;
      },
      (rs) => rs.reduce((n, r) => n + r.requests, 0) === 3,
    );
    expect(Object.fromEntries(rows.map((r) => [r.promptVersion, [r.requests, r.inputTokens]]))).toEqual({
      'support-answer@v1': [1, pinned.usage?.inputTokens],
      'support-answer@v2': [1, named.usage?.inputTokens],
      'by-hand': [1, byHand.usage?.inputTokens],
    });
  });

  it('refuses a request missing a variable as INVALID_ARGUMENT naming it', async () => {
    const r = await chat(mesh.gateway, KEYS.acme, userChat(QUESTION, { template: 'support-answer', templateVersion: 'v2', templateVariables: { product: 'Acme Cloud' } }));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe(status.INVALID_ARGUMENT);
    expect(r.error.details).toContain('template_variables: missing plan');
  });
});
