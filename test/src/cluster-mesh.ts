import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dial, PLAINTEXT } from '@llmgw/grpc';
import {
  combineServiceEnv,
  createMeshPki,
  freePortBlock,
  meshCredentials,
  startNatsCluster,
  startRedisCluster,
  startServiceProcesses,
  type LocalRedisCluster,
  type MeshCredentials,
  type NatsCluster,
  type ServiceProcesses,
} from '@llmgw/local-infra';
import { startSimulator, type Simulator } from '@llmgw/provider-simulator';
import { GatewayServiceClient, UsageServiceClient } from '@llmgw/proto/v1';
import { SERVICE_NAMES, type ServiceName } from '@llmgw/runtime';
import { metricSumAt } from './metrics.js';

/** The replicas of the cluster suite: what the design asks a mesh past one machine to survive with. */
export const CLUSTER_REPLICAS: Record<ServiceName, number> = { edge: 2, auth: 1, router: 2, quota: 3, 'provider-executor': 2, 'usage-accountant': 2 };

export interface ClusterMesh {
  redis: LocalRedisCluster;
  nats: NatsCluster;
  credentials: MeshCredentials;
  simulator: Simulator;
  services: ServiceProcesses;
  /** A client of every edge, calls round robin over them (as a load balancer in front of the edges). */
  gateway: GatewayServiceClient;
  usage: UsageServiceClient;
  /** A metric's sum on each process of a service, in `services.processAddrs` order. */
  metricPerProcess(service: ServiceName, name: string, labels?: Record<string, string>): Promise<number[]>;
  stop(): Promise<void>;
}

/**
 * A 3-master Redis Cluster and a 3-node JetStream cluster on loopback, each service's user on
 * them as in production, the simulator, and the services as processes, several of each
 * (CLUSTER_REPLICAS), sealed with mutual TLS. Each edge keeps a multiplexed stream per replica of
 * quota and the executor, recycled every `muxRecycleMs`, so that calls spread over replicas soon
 * after they start.
 */
export async function startClusterMesh(configPath: string, opts: { muxRecycleMs?: number } = {}): Promise<ClusterMesh> {
  const creds = meshCredentials();
  const metricsBase = await freePortBlock(SERVICE_NAMES.length);
  const [redis, nats, simulator] = await Promise.all([
    startRedisCluster({ masters: 3, users: creds.redisUsers }),
    startNatsCluster({ nodes: 3, users: creds.natsUsers }),
    startSimulator(),
  ]);
  const logDir = mkdtempSync(join(tmpdir(), 'llmgw-cluster-logs-'));
  const pkiDir = mkdtempSync(join(tmpdir(), 'llmgw-cluster-tls-'));
  const pki = createMeshPki(pkiDir);
  const servers = async () => {
    await Promise.all([redis.stop(), nats.stop(), simulator.close()]);
    rmSync(pkiDir, { recursive: true, force: true });
  };
  let services: ServiceProcesses;
  try {
    services = await startServiceProcesses({
      env: {
        GATEWAY_CONFIG: configPath,
        SIMULATOR_URL: simulator.url,
        LOG_LEVEL: 'info',
        // Eighteen processes on two cores: quota's 100 ms Redis deadline would let a burst of
        // rate-limited requests through (rates fail open), which is not what this suite measures.
        QUOTA_REDIS_TIMEOUT_MS: '1000',
        METRICS_PORT: String(metricsBase),
        // A multiple of both quota's and the executor's replicas: round robin places them evenly.
        EDGE_MUX_STREAMS: String(CLUSTER_REPLICAS.quota * CLUSTER_REPLICAS['provider-executor']),
        EDGE_MUX_RECYCLE_MS: String(opts.muxRecycleMs ?? 1_000),
      },
      serviceEnv: combineServiceEnv(pki.tlsEnv, creds.serviceEnv({ redis, nats })),
      logDir,
      replicas: CLUSTER_REPLICAS,
    });
  } catch (err) {
    await servers();
    throw err;
  }
  const gateway = dial(GatewayServiceClient, services.addrs.edge, PLAINTEXT.channelTo('edge'));
  const usage = dial(UsageServiceClient, services.addrs.edge, PLAINTEXT.channelTo('edge'));
  return {
    redis,
    nats,
    credentials: creds,
    simulator,
    services,
    gateway,
    usage,
    metricPerProcess: (service, name, labels = {}) => Promise.all(services.metricsPorts[service].map((port) => metricSumAt(port, name, labels))),
    stop: async () => {
      gateway.close();
      usage.close();
      await services.stop();
      await servers();
    },
  };
}
