import { AuthServiceClient, type AuthenticateResponse } from '@llmgw/proto/auth';
import {
  ExecutorServiceClient,
  ExecutorServiceService,
  type ExecuteChatRequest,
  type ExecuteChatResponse,
  type ExecuteChatStreamRequest,
  type ExecuteChatStreamResponse,
  type ExecuteEmbedRequest,
  type ExecuteEmbedResponse,
} from '@llmgw/proto/executor';
import { QuotaServiceClient, QuotaServiceService, type ReleaseQuotaRequest, type ReserveQuotaRequest, type ReserveQuotaResponse } from '@llmgw/proto/quota';
import { RouterServiceClient, type CatalogEntry, type ListModelsRequest, type Plan, type PlanRouteRequest } from '@llmgw/proto/router';
import { UsageServiceClient, type GetUsageRequest, type GetUsageResponse } from '@llmgw/proto/v1';
import { callStream, callUnary, dial, Multiplexer, PLAINTEXT, type CallOpts, type LocalCalls, type MeshTransport, type MultiplexedCalls, type MultiplexerOptions } from '@llmgw/grpc';
import { AppError } from '@llmgw/errors';
import type { ServiceAddrs } from '@llmgw/runtime';

/** The services the edge orchestrates, as one port so that the pipeline can be tested without a network. */
export interface Downstream {
  authenticate(apiKey: string, opts: CallOpts): Promise<AuthenticateResponse>;
  planRoute(req: PlanRouteRequest, opts: CallOpts): Promise<Plan>;
  listModels(req: ListModelsRequest, opts: CallOpts): Promise<CatalogEntry[]>;
  reserveQuota(req: ReserveQuotaRequest, opts: CallOpts): Promise<ReserveQuotaResponse>;
  releaseQuota(req: ReleaseQuotaRequest, opts: CallOpts): Promise<void>;
  executeChat(req: ExecuteChatRequest, opts: CallOpts): Promise<ExecuteChatResponse>;
  executeChatStream(req: ExecuteChatStreamRequest, opts: CallOpts): AsyncIterable<ExecuteChatStreamResponse>;
  executeEmbed(req: ExecuteEmbedRequest, opts: CallOpts): Promise<ExecuteEmbedResponse>;
  getUsage(req: GetUsageRequest, opts: CallOpts): Promise<GetUsageResponse>;
  close(): void;
}

export function createGrpcDownstream(
  addrs: ServiceAddrs,
  transport: MeshTransport = PLAINTEXT,
  opts: { multiplexed?: boolean; mux?: MultiplexerOptions; local?: LocalCalls } = {},
): Downstream {
  const auth = dial(AuthServiceClient, addrs.auth, transport.channelTo('auth'));
  const router = dial(RouterServiceClient, addrs.router, transport.channelTo('router'));
  const quota = dial(QuotaServiceClient, addrs.quota, transport.channelTo('quota'));
  const executor = dial(ExecutorServiceClient, addrs['provider-executor'], transport.channelTo('provider-executor'));
  const usage = dial(UsageServiceClient, addrs['usage-accountant'], transport.channelTo('usage-accountant'));
  // The calls every request makes (reserve, execute) ride long-lived streams on the same connections.
  const multiplexed = opts.multiplexed ?? true;
  // In monolithic mode quota and the executor run in this process: their handlers are called directly.
  const quotaCalls: MultiplexedCalls = opts.local?.at(addrs.quota) ?? new Multiplexer(quota, opts.mux);
  const executorCalls: MultiplexedCalls = opts.local?.at(addrs['provider-executor']) ?? new Multiplexer(executor, opts.mux);
  return {
    authenticate: (apiKey, opts) => callUnary(auth.authenticate.bind(auth), { apiKey }, opts),
    planRoute: async (req, opts) => {
      const res = await callUnary(router.planRoute.bind(router), req, opts);
      if (!res.plan) throw new AppError('internal', 'router returned no plan');
      return res.plan;
    },
    listModels: async (req, opts) => (await callUnary(router.listModels.bind(router), req, opts)).entries,
    reserveQuota: (req, opts) => (multiplexed ? quotaCalls.call(QuotaServiceService.reserveQuota, req, opts) : callUnary(quota.reserveQuota.bind(quota), req, opts)),
    releaseQuota: async (req, opts) => {
      await callUnary(quota.releaseQuota.bind(quota), req, opts);
    },
    executeChat: (req, opts) => (multiplexed ? executorCalls.call(ExecutorServiceService.executeChat, req, opts) : callUnary(executor.executeChat.bind(executor), req, opts)),
    executeChatStream: (req, opts) =>
      multiplexed ? executorCalls.stream(ExecutorServiceService.executeChatStream, req, opts) : callStream(executor.executeChatStream.bind(executor), req, opts),
    executeEmbed: (req, opts) => (multiplexed ? executorCalls.call(ExecutorServiceService.executeEmbed, req, opts) : callUnary(executor.executeEmbed.bind(executor), req, opts)),
    getUsage: (req, opts) => callUnary(usage.getUsage.bind(usage), req, opts),
    close: () => {
      quotaCalls.close();
      executorCalls.close();
      for (const c of [auth, router, quota, executor, usage]) c.close();
    },
  };
}
