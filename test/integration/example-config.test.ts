import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QualityTier } from '@llmgw/proto/v1';
import { chat, startTestMesh, userChat, type TestMesh } from '../src/harness.js';

// The example config that `npm start` runs, with its demo keys: the tiers must work as documented.
const EXAMPLE = fileURLToPath(new URL('../../config/gateway.yaml', import.meta.url));
const STARTUP_KEY = 'sk-demo-startup-0123456789abcdef';
const ENTERPRISE_KEY = 'sk-demo-enterprise-0123456789abcdef';

let mesh: TestMesh;
beforeAll(async () => {
  mesh = await startTestMesh(EXAMPLE);
}, 60_000);
afterAll(async () => {
  await mesh?.stop();
});

describe('the example config (npm start) through the mesh', () => {
  it('answers a startup tenant from the small model', async () => {
    const res = await chat(mesh.gateway, STARTUP_KEY, userChat('hello'));
    if (!res.ok) throw res.error;
    expect(res.value.model).toBe('small-fast');
    expect(res.value.routing?.route).toBe('support-chat');
  });

  it('keeps the large reasoning model from the startup tier, even when it asks for premium quality', async () => {
    const pinned = await chat(mesh.gateway, STARTUP_KEY, userChat('think', { model: 'large-reasoning' }));
    expect(pinned.ok).toBe(false);
    if (!pinned.ok) expect(pinned.error.code).toBe(status.PERMISSION_DENIED);
    const premium = await chat(mesh.gateway, STARTUP_KEY, userChat('think', { qualityTier: QualityTier.QUALITY_TIER_PREMIUM }));
    if (!premium.ok) throw premium.error;
    expect(premium.value.model).toBe('small-fast');
  });

  it('routes an enterprise tenant asking for premium quality to the large reasoning model', async () => {
    const res = await chat(mesh.gateway, ENTERPRISE_KEY, userChat('think', { qualityTier: QualityTier.QUALITY_TIER_PREMIUM }));
    if (!res.ok) throw res.error;
    expect(res.value.model).toBe('large-reasoning');
    expect(res.value.routing?.rule).toBe('premium-reasoning');
  });

  it('falls back from the flaky primary of the demo route', async () => {
    const res = await chat(mesh.gateway, ENTERPRISE_KEY, userChat('hello', { route: 'fallback-demo' }));
    if (!res.ok) throw res.error;
    expect(res.value.routing?.fallbackUsed).toBe(true);
    expect(res.value.model).toBe('small-fast');
  });

  it('holds the startup tier to 120 requests a minute', async () => {
    const results = await Promise.all(Array.from({ length: 125 }, (_, i) => chat(mesh.gateway, STARTUP_KEY, userChat(`burst ${i}`))));
    // Two requests of this tenant were admitted above; the refused pin never reached quota.
    const refused = results.filter((r) => !r.ok);
    expect(results.filter((r) => r.ok)).toHaveLength(120 - 2);
    expect(refused.every((r) => !r.ok && r.error.code === status.RESOURCE_EXHAUSTED)).toBe(true);
  });
});
