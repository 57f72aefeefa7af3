import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callStream, dial } from '@llmgw/grpc';
import { connectNatsBus, Subjects, type NatsEventBus } from '@llmgw/events';
import { meshCredentials, startNatsServer, startRedisServer, startServiceProcesses, type LocalServer, type MeshCredentials, type ServiceProcesses } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { costMicros } from '@llmgw/pricing';
import { ExecutorServiceClient } from '@llmgw/proto/executor';
import { AttemptOutcome, AttemptUsage, TokenSource, UsageRecorded } from '@llmgw/proto/v1';
import { startSimulator, type Simulator } from '@llmgw/provider-simulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attempt, chatRequest } from './test-helpers.js';
import { UsageJournal } from './usage-journal.js';

/**
 * The executor killed (SIGKILL) with streams waiting for their first token: the providers bill
 * their prompts, and the restarted executor publishes the write-ahead notes it finds in its
 * journal, so that the usage on NATS covers every request exactly once and equals the bill.
 */

const SLOW_MS = 3_000;
let nats: LocalServer;
let redis: LocalServer;
let creds: MeshCredentials;
let sim: Simulator;
let bus: NatsEventBus;
let dir: string;
const consumed: UsageRecorded[] = [];

beforeAll(async () => {
  creds = meshCredentials();
  [nats, redis, sim] = await Promise.all([startNatsServer({ users: creds.natsUsers }), startRedisServer({ users: creds.redisUsers }), startSimulator()]);
  dir = mkdtempSync(join(tmpdir(), 'executor-crash-'));
  bus = await connectNatsBus({ url: nats.url, name: 'crash-test', logger: silentLogger() });
  await bus.consume(Subjects.usageRecorded, 'crash-test', async (data) => void consumed.push(UsageRecorded.decode(data)));
});
afterAll(async () => {
  await bus?.close();
  await Promise.all([nats?.stop(), redis?.stop(), sim?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function startExecutor(outbox: string): Promise<ServiceProcesses> {
  const config = join(dir, 'gateway.yaml');
  writeFileSync(config, `providers:\n  oa: { kind: openai, base_url: "${sim.url}/v1", api_key: sim-key }\n`);
  return startServiceProcesses({
    env: { GATEWAY_CONFIG: config, USAGE_OUTBOX_PATH: outbox, LOG_LEVEL: 'info' },
    serviceEnv: creds.serviceEnv({ nats, redis }),
    logDir: join(dir, 'logs'),
    services: ['provider-executor'],
  });
}

/** Reads a stream to its end or its error (the executor dying), whichever comes. */
async function drainStream(client: ExecutorServiceClient, req: ReturnType<typeof chatRequest>): Promise<void> {
  try {
    for await (const _ of callStream(client.executeChatStream.bind(client), req, { timeoutMs: 15_000 })) void _;
  } catch {
    // Expected for the streams under way at the kill.
  }
}

describe('an executor killed with streams in flight', () => {
  it('publishes every request exactly once after its restart, the interrupted ones estimated and equal to the provider bill', async () => {
    const outbox = join(dir, 'state', 'usage.journal');
    const first = await startExecutor(outbox);
    const client = dial(ExecutorServiceClient, first.addrs['provider-executor']);
    const planned = (upstream: string) => [attempt('oa-gpt-4o-mini', upstream, { timeoutMs: 10_000 })];
    const done = [1, 2].map((i) => chatRequest(`finish me ${'please '.repeat(i)}`, planned(`gpt-4o-mini-done-${i}`), {}, {}, `done-${i}`));
    const flying = [1, 2, 3, 4].map((i) => chatRequest(`wait for me ${'now '.repeat(i)}`, planned(`gpt-4o-mini-flight-${i}-slow-${SLOW_MS}`), {}, {}, `flight-${i}`));

    await Promise.all(done.map((r) => drainStream(client, r)));
    // Published before the kill: a republish after the restart must be dropped as a duplicate.
    await until('the finished requests on NATS', () => consumed.length === done.length, 5_000);
    const streams = flying.map((r) => drainStream(client, r));
    // At the provider (so noted: the note is written before the call), waiting for a first token.
    await until('the slow streams at the provider', () => flying.every((r) => sim.stats().byModel[r.plan!.attempts[0]!.upstreamModel] === 1), 5_000);
    const killedAt = Date.now();
    await first.stopOne('provider-executor', 'SIGKILL');
    client.close();
    await Promise.all(streams);
    expect(Date.now() - killedAt).toBeLessThan(SLOW_MS);

    const second = await startExecutor(outbox);
    try {
      const all = [...done, ...flying];
      await until('one event per request on NATS', () => new Set(consumed.map((e) => e.requestId)).size === all.length, 10_000);
      // Each provider bills a slow stream's prompt when its latency ends, client there or not.
      await until('the simulator bill', () => sim.bill().total.requests === all.length, SLOW_MS + 2_000);
      // Time for a duplicate to show up, were one to get through.
      await new Promise((r) => setTimeout(r, 300));
      expect(consumed.map((e) => e.requestId).sort()).toEqual(all.map((r) => r.requestId).sort());

      const bill = sim.bill().models;
      for (const r of all) {
        const ev = consumed.find((e) => e.requestId === r.requestId)!;
        const planned = r.plan!.attempts[0]!;
        const billed = bill[planned.upstreamModel]!;
        expect(billed.requests, r.requestId).toBe(1);
        expect([ev.inputTokens, ev.outputTokens], r.requestId).toEqual([billed.input_tokens, billed.output_tokens]);
        expect(ev.costMicros, r.requestId).toBe(costMicros(planned.pricing!, { inputTokens: billed.input_tokens, outputTokens: billed.output_tokens }));
        if (r.requestId.startsWith('done')) {
          expect(ev).toMatchObject({ success: true, tokenSource: TokenSource.TOKEN_SOURCE_PROVIDER });
          continue;
        }
        expect(billed.output_tokens).toBe(0);
        expect(ev).toMatchObject({ success: false, errorCode: 'UNAVAILABLE', tokenSource: TokenSource.TOKEN_SOURCE_ESTIMATED, streamed: true, attemptCount: 1 });
        expect(ev.attempts).toEqual([
          AttemptUsage.fromPartial({
            model: 'oa-gpt-4o-mini',
            provider: 'oa',
            inputTokens: billed.input_tokens,
            outputTokens: 0,
            costMicros: ev.costMicros,
            tokenSource: TokenSource.TOKEN_SOURCE_ESTIMATED,
            outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED,
            reason: 'executor_restarted',
          }),
        ]);
      }
    } finally {
      await second.stop();
    }
    // The restarted executor saw every event acknowledged: its journal is empty.
    const left = await UsageJournal.open({ path: outbox, maxLiveBytes: 1 << 20, logger: silentLogger() });
    expect(left.records).toBe(0);
    await left.close();
  }, 25_000);
});
