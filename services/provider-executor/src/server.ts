import { createGrpcServer, MULTIPLEXER_SERVICE_NAME, serveMultiplexed, serverStream, tolerantDecoding, unary, type GrpcServer, type GrpcServerOptions, type RpcMetricsHook } from '@llmgw/grpc';
import type { Logger } from '@llmgw/logging';
import {
  ExecutorServiceService,
  type ExecuteChatRequest,
  type ExecuteChatResponse,
  type ExecuteChatStreamRequest,
  type ExecuteChatStreamResponse,
  type ExecuteEmbedRequest,
  type ExecuteEmbedResponse,
} from '@llmgw/proto/executor';
import type { Executor } from './execute.js';

export const EXECUTOR_SERVICE_NAME = 'llmgateway.executor.v1.ExecutorService';

/** Registers the ExecutorService handlers (plus health and reflection); only maps gRPC to Executor. */
export function createExecutorServer(executor: Executor, logger: Logger, metrics?: RpcMetricsHook, opts: GrpcServerOptions = {}): GrpcServer {
  const rpc = { metrics };
  const g = createGrpcServer([EXECUTOR_SERVICE_NAME, MULTIPLEXER_SERVICE_NAME], opts);
  const handlers = {
    executeChat: unary<ExecuteChatRequest, ExecuteChatResponse>('ExecuteChat', logger, (req, ctx) => executor.executeChat(req, ctx), rpc),
    executeChatStream: serverStream<ExecuteChatStreamRequest, ExecuteChatStreamResponse>('ExecuteChatStream', logger, (req, ctx, send) =>
      executor.executeChatStream(req, ctx, send),
    rpc),
    executeEmbed: unary<ExecuteEmbedRequest, ExecuteEmbedResponse>('ExecuteEmbed', logger, (req, ctx) => executor.executeEmbed(req, ctx), rpc),
  };
  g.server.addService(tolerantDecoding(ExecutorServiceService), handlers);
  // The edge's unary calls arrive over long-lived streams; the same handlers answer them.
  serveMultiplexed(g, logger, tolerantDecoding(ExecutorServiceService), handlers);
  return g;
}
