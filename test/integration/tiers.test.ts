import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { chat, KEYS, userChat, useTestMesh } from '../src/harness.js';

const mesh = useTestMesh();

describe('tiers through the mesh', () => {
  it('refuses the large reasoning model to a startup tenant with PERMISSION_DENIED, before any provider call', async () => {
    const before = mesh().simulator.stats().totalRequests;
    const res = await chat(mesh().gateway, KEYS.startup, userChat('think hard', { model: 'large-reasoning' }));
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.error.code).toBe(status.PERMISSION_DENIED);
    expect(res.error.details).toMatch(/large-reasoning/);
    expect(mesh().simulator.stats().totalRequests).toBe(before);
  });

  it('lets an enterprise tenant pin the large reasoning model', async () => {
    const res = await chat(mesh().gateway, KEYS.enterprise, userChat('think hard', { model: 'large-reasoning' }));
    if (!res.ok) throw res.error;
    expect(res.value.model).toBe('large-reasoning');
  });

  it('refuses a request over the route cap as INVALID_ARGUMENT, not as a rate limit', async () => {
    const res = await chat(mesh().gateway, KEYS.startup, userChat('x', { maxTokens: 100_000 }));
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.error.code).toBe(status.INVALID_ARGUMENT);
  });
});
