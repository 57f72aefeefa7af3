import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { AttemptOutcome, FinishReason } from '@llmgw/proto/v1';
import { chatStream, eventually, KEYS, userChat, useTestMesh } from '../src/harness.js';

const mesh = useTestMesh();

describe('ChatStream through the mesh', () => {
  it.each([
    ['chat', 'small-fast', 'sim-openai'],
    ['anthropic', 'claude', 'sim-anthropic'],
    ['gemini', 'gemini', 'sim-gemini'],
  ])('streams route %s from %s with usage and routing on the last message', async (route, model, provider) => {
    const { chunks, error } = await chatStream(mesh().gateway, KEYS.enterprise, userChat('Tell me about streams [[tokens:40]]', { route }));
    expect(error).toBeUndefined();
    const deltas = chunks.filter((c) => c.contentDelta.length > 0);
    expect(deltas.length).toBeGreaterThan(3);
    const last = chunks.at(-1)!;
    expect(last.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
    expect(last.usage?.outputTokens).toBe(40);
    expect(last.usage?.inputTokens).toBeGreaterThan(0);
    expect(last.usage?.costMicros).toBeGreaterThan(0);
    expect(last.routing).toMatchObject({ chosenModel: model, fallbackUsed: false });
    expect(last.provider).toBe(provider);
    // Only the last message carries the summary.
    expect(chunks.slice(0, -1).every((c) => c.usage === undefined && c.routing === undefined)).toBe(true);
  });

  it('falls back before the first token when the primary fails', async () => {
    const { chunks, error } = await chatStream(mesh().gateway, KEYS.enterprise, userChat('hello [[tokens:12]]', { route: 'fallback' }));
    expect(error).toBeUndefined();
    const last = chunks.at(-1)!;
    expect(last.routing?.fallbackUsed).toBe(true);
    expect(last.routing?.attempts.map((a) => [a.model, a.outcome])).toEqual([
      ['dead-primary', AttemptOutcome.ATTEMPT_OUTCOME_FAILED],
      ['small-fast', AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS],
    ]);
    expect(chunks.map((c) => c.contentDelta).join('')).toContain('hello');
  });

  it('ends a stream whose provider drops mid-way with UNAVAILABLE after what was sent, and counts it', async () => {
    const { chunks, error } = await chatStream(mesh().gateway, KEYS.enterprise, userChat('drop me [[long]]', { route: 'dropping' }));
    expect(error?.code).toBe(status.UNAVAILABLE);
    expect(chunks.filter((c) => c.contentDelta).length).toBeGreaterThan(0);
    const summary = chunks.find((c) => c.usage !== undefined);
    expect(summary?.usage?.outputTokens).toBeGreaterThan(0);
    expect(summary?.usage?.tokensEstimated).toBe(true);
  });

  it('cancels the upstream request when the caller cancels', async () => {
    mesh().simulator.resetStats();
    const { chunks, error } = await chatStream(
      mesh().gateway,
      KEYS.enterprise,
      userChat('a very long answer please [[tokens:3000]]', { maxTokens: 2000 }),
      { cancelAfter: 3 },
    );
    expect(error?.code).toBe(status.CANCELLED);
    expect(chunks.length).toBeGreaterThanOrEqual(3);
    // 3000 tokens at 5 ms a chunk would take seconds: the upstream must be gone long before that.
    const open = await eventually(async () => mesh().simulator.stats().openRequests, (n) => n === 0, 1_500);
    expect(open).toBe(0);
  });
});
