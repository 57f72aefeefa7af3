import { callUnary, dial, type MeshTransport } from '@llmgw/grpc';
import { AuthServiceClient } from '@llmgw/proto/auth';
import { ChatParams, ExecutorServiceClient } from '@llmgw/proto/executor';
import { QuotaServiceClient } from '@llmgw/proto/quota';
import { Operation, PlanRouteRequest, RouterServiceClient } from '@llmgw/proto/router';
import { Role } from '@llmgw/proto/v1';
import type { ServiceAddrs } from '@llmgw/runtime';
import { BENCH_KEY } from './clients.js';
import { closedLoop, summarise, type Summary } from './stats.js';

/**
 * Each service called on its own, one call at a time, back to back: what one hop of the
 * pipeline costs when its service is busy. Together with the hop floor this says where the
 * mesh's added latency goes. `asEdge`: the edge's certificate, so each call is made as the edge makes it.
 */
export async function measureHops(addrs: ServiceAddrs, asEdge: MeshTransport, direct: () => Promise<unknown>, edgeChat: () => Promise<unknown>): Promise<[string, Summary][]> {
  const auth = dial(AuthServiceClient, addrs.auth, asEdge.channelTo('auth'));
  const router = dial(RouterServiceClient, addrs.router, asEdge.channelTo('router'));
  const quota = dial(QuotaServiceClient, addrs.quota, asEdge.channelTo('quota'));
  const executor = dial(ExecutorServiceClient, addrs['provider-executor'], asEdge.channelTo('provider-executor'));
  const opts = { timeoutMs: 5_000 };
  const planRequest = PlanRouteRequest.fromPartial({ tenantId: 'bench', tier: 'bench', route: 'chat', operation: Operation.OPERATION_CHAT, promptTokens: 20 });
  const plan = (await callUnary(router.planRoute.bind(router), planRequest, opts)).plan;
  const params = ChatParams.fromPartial({ messages: [{ role: Role.ROLE_USER, content: 'hop [[tokens:32]]' }], maxTokens: 64 });
  let seq = 0;
  const hops: [string, () => Promise<unknown>][] = [
    ['simulator over HTTP (baseline)', direct],
    ['auth Authenticate (not on the hot path: cached)', () => callUnary(auth.authenticate.bind(auth), { apiKey: BENCH_KEY }, opts)],
    ['router PlanRoute (cached by the edge)', () => callUnary(router.planRoute.bind(router), planRequest, opts)],
    ['quota ReserveQuota (5 limits, Redis Lua)', () =>
      callUnary(quota.reserveQuota.bind(quota), { requestId: `hop-${++seq}`, tenantId: 'bench', tier: 'bench', route: 'chat', model: 'small-fast', estimatedTokens: 100, estimatedCostMicros: 10 }, opts)],
    ['executor ExecuteChat (→ simulator)', () => callUnary(executor.executeChat.bind(executor), { requestId: `hop-${++seq}`, tenantId: 'bench', keyId: 'bench', request: undefined, params, plan }, opts)],
    ['edge Chat (whole pipeline)', edgeChat],
  ];
  const rows: [string, Summary][] = [];
  for (const [name, fn] of hops) {
    await closedLoop(200, 1, async () => void (await fn()));
    const r = await closedLoop(1000, 1, async () => void (await fn()));
    rows.push([name, summarise(r.latencies, r.elapsedMs)]);
  }
  for (const c of [auth, router, quota, executor]) c.close();
  return rows;
}
