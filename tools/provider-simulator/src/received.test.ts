import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from './index.js';
import { RECEIVED_KEPT, StatsRecorder } from './server.js';

let sim: Simulator;
beforeAll(async () => {
  sim = await startSimulator();
});
afterAll(async () => {
  await sim.close();
});

const post = (path: string, body: unknown) =>
  fetch(`${sim.url}${path}`, { method: 'POST', headers: { authorization: 'Bearer test-key', 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('what the simulator received', () => {
  it('keeps each request body that named a model, in order, until resetStats', async () => {
    sim.resetStats();
    await post('/v1/chat/completions', { model: 'm-1', messages: [{ role: 'user', content: 'first [EMAIL_1]' }] });
    await post('/v1/embeddings', { model: 'e-1', input: ['second'] });
    await post('/v1/chat/completions', { messages: [] }); // no model: refused, not kept
    expect(sim.received()).toEqual([
      { path: '/v1/chat/completions', model: 'm-1', body: { model: 'm-1', messages: [{ role: 'user', content: 'first [EMAIL_1]' }] } },
      { path: '/v1/embeddings', model: 'e-1', body: { model: 'e-1', input: ['second'] } },
    ]);
    sim.resetStats();
    expect(sim.received()).toEqual([]);
  });

  it('keeps only the newest bodies', () => {
    const stats = new StatsRecorder();
    for (let i = 0; i <= RECEIVED_KEPT; i++) stats.receive({ path: '/v1/chat/completions', model: `m-${i}`, body: {} });
    const kept = stats.received();
    expect(kept).toHaveLength(RECEIVED_KEPT);
    expect(kept[0]?.model).toBe('m-1');
    expect(kept.at(-1)?.model).toBe(`m-${RECEIVED_KEPT}`);
  });
});
