import { ConfigWatcher, type EdgeSections } from '@llmgw/config';
import { Subjects } from '@llmgw/events';
import { drain, listen, PLAINTEXT, publicTls, type MeshTransport } from '@llmgw/grpc';
import { KeyRevoked } from '@llmgw/proto/auth';
import type { RunningService, ServiceDefinition, ServiceDeps } from '@llmgw/runtime';
import { AuthCache } from '@llmgw/caller-auth';
import { loadEdgeConfig, parseEdgeSections, type EdgeConfig } from './config.js';
import { createGrpcDownstream, type Downstream } from './downstream.js';
import { GatewayPipeline } from './pipeline.js';
import { PlanCache } from './plan-cache.js';
import { createEdgeServer } from './server.js';

export { GatewayPipeline } from './pipeline.js';
export type { Downstream } from './downstream.js';
export { loadEdgeConfig, type EdgeConfig } from './config.js';

export async function startEdge(deps: ServiceDeps<EdgeConfig>, downstream: Downstream = createGrpcDownstream(deps.addrs, deps.transport)): Promise<RunningService> {
  const logger = deps.logger.child({ component: 'edge' });
  const authCache = new AuthCache({ now: Date.now });
  const stopRevocations = deps.bus.onBroadcast(Subjects.keyRevoked, (data) => {
    let ev: KeyRevoked;
    try {
      ev = KeyRevoked.decode(data);
    } catch (err) {
      logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'undecodable KeyRevoked event');
      return;
    }
    authCache.revokeKey(ev.keyId);
    logger.info({ keyId: ev.keyId }, 'revoked key dropped from the auth cache');
  });
  const sections = new ConfigWatcher<EdgeSections>(deps.config.sections, {
    path: deps.configPath,
    parse: (text, source) => parseEdgeSections(text, source, deps.env),
    logger,
    intervalMs: deps.config.policyPollMs,
  });
  sections.start();
  const planCache = new PlanCache({ ttlMs: deps.config.planCacheMs, now: Date.now });
  const pipeline = new GatewayPipeline({ config: () => sections.current, downstream, authCache, planCache, now: Date.now });
  // The public port is not part of the mesh: callers bring API keys, not certificates.
  const tls = deps.config.publicTls;
  const publicTransport: MeshTransport = tls ? publicTls(tls.certFile, tls.keyFile, 60_000) : PLAINTEXT;
  const g = createEdgeServer(pipeline, logger, deps.metrics?.rpc, { transport: publicTransport, reflection: deps.config.reflection });
  const port = await listen(g, deps.listenAddr);
  return {
    name: 'edge',
    port,
    close: async () => {
      await drain(g, deps.drainMs);
      sections.stop();
      stopRevocations();
      downstream.close();
    },
  };
}

export const edgeService: ServiceDefinition<EdgeConfig> = {
  name: 'edge',
  needsRedis: false,
  loadConfig: loadEdgeConfig,
  start: (deps) => startEdge(deps),
};
