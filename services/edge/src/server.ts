import { createGrpcServer, serverStream, tolerantDecoding, unary, type GrpcServer, type GrpcServerOptions, type RpcMetricsHook } from '@llmgw/grpc';
import type { Logger } from '@llmgw/logging';
import { GatewayServiceService, UsageServiceService } from '@llmgw/proto/v1';
import type { GatewayPipeline } from './pipeline.js';

/** Maps the public gRPC API onto the pipeline; nothing else lives here. */
export function createEdgeServer(pipeline: GatewayPipeline, logger: Logger, metrics?: RpcMetricsHook, opts: GrpcServerOptions = {}): GrpcServer {
  const g = createGrpcServer(['llmgateway.v1.GatewayService', 'llmgateway.v1.UsageService'], opts);
  const pub = { publicEntry: true, metrics };
  g.server.addService(tolerantDecoding(GatewayServiceService), {
    chat: unary('Chat', logger, (req, ctx) => pipeline.chat(req, ctx), pub),
    chatStream: serverStream('ChatStream', logger, (req, ctx, send) => pipeline.chatStream(req, ctx, send), pub),
    embed: unary('Embed', logger, (req, ctx) => pipeline.embed(req, ctx), pub),
  });
  g.server.addService(tolerantDecoding(UsageServiceService), {
    getUsage: unary('GetUsage', logger, (req, ctx) => pipeline.getUsage(req, ctx), pub),
  });
  return g;
}
