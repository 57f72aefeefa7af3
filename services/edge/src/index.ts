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
import { closeHttp, createHttpSurface, listenHttp } from './http/surface.js';
import { httpMetrics, intentMetrics, policyMetrics } from '@llmgw/metrics';
import { IntentClassifier } from './intent-classifier.js';
import { refuseChangedVersions } from './templates.js';

export { GatewayPipeline } from './pipeline.js';
export { compilePolicy, scanTexts } from './content-policy.js';
export type { Downstream } from './downstream.js';
export { loadEdgeConfig, type EdgeConfig } from './config.js';

export async function startEdge(
  deps: ServiceDeps<EdgeConfig>,
  downstream: Downstream = createGrpcDownstream(deps.addrs, deps.transport, { multiplexed: deps.config.multiplexedCalls, mux: deps.config.mux, local: deps.local }),
): Promise<RunningService> {
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
  const sections: ConfigWatcher<EdgeSections> = new ConfigWatcher<EdgeSections>(deps.config.sections, {
    path: deps.configPath,
    parse: (text, source) => refuseChangedVersions(sections.current.templates, parseEdgeSections(text, source, deps.env)),
    logger,
    intervalMs: deps.config.policyPollMs,
  });
  sections.start();
  const planCache = new PlanCache({ ttlMs: deps.config.planCacheMs, now: Date.now });
  const intents = new IntentClassifier({ logger, metrics: deps.metrics && intentMetrics(deps.metrics) });
  const pipeline = new GatewayPipeline({ config: () => sections.current, downstream, authCache, planCache, now: Date.now, accessLog: deps.config.accessLog, intents, policyMetrics: deps.metrics && policyMetrics(deps.metrics) });
  // The public port is not part of the mesh: callers bring API keys, not certificates.
  const tls = deps.config.publicTls;
  const publicTransport: MeshTransport = tls ? publicTls(tls.certFile, tls.keyFile, 60_000) : PLAINTEXT;
  const g = createEdgeServer(pipeline, logger, deps.metrics?.rpc, { transport: publicTransport, reflection: deps.config.reflection });
  const http = createHttpSurface(pipeline, logger, { maxBodyBytes: deps.config.httpMaxBodyBytes, metrics: deps.metrics && httpMetrics(deps.metrics) });
  const port = await listen(g, deps.listenAddr);
  if (deps.config.httpAddr) {
    const httpPort = await listenHttp(http, deps.config.httpAddr);
    logger.info({ httpPort }, `OpenAI- and Anthropic-compatible HTTP surface on http://${deps.config.httpAddr}/v1`);
  }
  return {
    name: 'edge',
    port,
    close: async () => {
      // Both doors drain alike: new requests for drainMs while load balancers catch up, then only those under way.
      await Promise.all([drain(g, deps.drainMs), deps.config.httpAddr ? closeHttp(http, deps.drainMs, 10_000) : undefined]);
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
