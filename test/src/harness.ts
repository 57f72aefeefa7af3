import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll } from 'vitest';
import { dial, meshTls, meshTlsFilesIn, PLAINTEXT, type ChannelLink } from '@llmgw/grpc';
import { combineServiceEnv, createMeshPki, freePortBlock, meshCredentials, startNatsServer, startRedisServer, startServiceProcesses, type LocalServer, type MeshCertificates, type MeshCredentials, type ServiceProcesses } from '@llmgw/local-infra';
import { OPERATOR, SERVICE_NAMES, type MeshIdentity, type ServiceName } from '@llmgw/runtime';
import { metricSum } from './metrics.js';
import { startSimulator, type Simulator } from '@llmgw/provider-simulator';
import { ChatRequest, GatewayServiceClient, Role, UsageServiceClient, type ChatResponse, type ChatStreamResponse, GetUsageRequest, type GetUsageResponse } from '@llmgw/proto/v1';

export const TEST_CONFIG = fileURLToPath(new URL('../fixtures/gateway.test.yaml', import.meta.url));

export const KEYS = {
  startup: 'sk-test-startup-000000000000',
  enterprise: 'sk-test-enterprise-000000000',
  load: 'sk-test-loadtest-00000000000',
  other: 'sk-test-other-0000000000000',
  admin: 'sk-test-admin-0000000000000',
  /** Two requests a minute. */
  trickle: 'sk-test-trickle-00000000000',
} as const;

export interface TestMesh {
  /** `url`s log in as the admin; the services each as their own user (credentials). */
  redis: LocalServer;
  nats: LocalServer;
  credentials: MeshCredentials;
  simulator: Simulator;
  services: ServiceProcesses;
  gateway: GatewayServiceClient;
  usage: UsageServiceClient;
  /** The edge's OpenAI- and Anthropic-compatible HTTP surface, e.g. http://127.0.0.1:41234/v1. */
  httpBaseUrl: string;
  logDir: string;
  /** The mesh's throwaway CA and certificates (one per service, and the operator's). */
  pki: MeshCertificates;
  /** What dialling `peer` with `identity`'s certificate needs. */
  linkAs(identity: MeshIdentity, peer: ServiceName): ChannelLink;
  /** A client of an internal service, with the operator's certificate unless another identity is named. */
  dial<C>(Ctor: new (address: string, ...rest: never[]) => C, service: ServiceName, identity?: MeshIdentity): C;
  /** With `{ metrics: true }`: each service serves /metrics on this port plus its METRICS_PORT_OFFSET. */
  metricsBase?: number;
  /** The sum of a metric's series on a service whose labels include every pair given (needs `{ metrics: true }`). */
  metric(service: ServiceName, name: string, labels?: Record<string, string>): Promise<number>;
  /** NATS killed (SIGKILL) for `ms`, then started again on the same port and store, as after a crash. */
  natsOutage(ms: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Real redis-server and nats-server on free loopback ports, with a user per service as in
 * production, the simulator, and the six services as processes.
 */
export async function startTestMesh(configPath = TEST_CONFIG, extraEnv: Record<string, string> = {}, opts: { metrics?: boolean } = {}): Promise<TestMesh> {
  const metricsBase = opts.metrics ? await freePortBlock(SERVICE_NAMES.length) : undefined;
  const natsStore = mkdtempSync(join(tmpdir(), 'llmgw-mesh-nats-'));
  const creds = meshCredentials();
  const [redis, first, simulator] = await Promise.all([
    startRedisServer({ users: creds.redisUsers }),
    startNatsServer({ storeDir: natsStore, users: creds.natsUsers }),
    startSimulator({ streamChunkDelayMs: 5 }),
  ]);
  let nats = first;
  const logDir = mkdtempSync(join(tmpdir(), 'llmgw-mesh-logs-'));
  const pkiDir = mkdtempSync(join(tmpdir(), 'llmgw-mesh-tls-'));
  const pki = createMeshPki(pkiDir);
  let services: ServiceProcesses;
  try {
    services = await startServiceProcesses({
      env: { GATEWAY_CONFIG: configPath, SIMULATOR_URL: simulator.url, LOG_LEVEL: 'info', ...(metricsBase ? { METRICS_PORT: String(metricsBase) } : {}), ...extraEnv },
      serviceEnv: combineServiceEnv(pki.tlsEnv, creds.serviceEnv({ redis, nats })),
      logDir,
    });
  } catch (err) {
    await Promise.all([redis.stop(), nats.stop(), simulator.close()]);
    rmSync(natsStore, { recursive: true, force: true });
    rmSync(pkiDir, { recursive: true, force: true });
    throw err;
  }
  const linkAs = meshLinks(pki);
  const gateway = new GatewayServiceClient(services.addrs.edge, credentials.createInsecure());
  const usage = new UsageServiceClient(services.addrs.edge, credentials.createInsecure());
  const mesh: TestMesh = {
    redis,
    nats,
    credentials: creds,
    simulator,
    services,
    gateway,
    usage,
    httpBaseUrl: `http://${services.edgeHttpAddr}/v1`,
    logDir,
    pki,
    linkAs,
    metricsBase,
    metric: (service, name, labels = {}) => {
      if (metricsBase === undefined) throw new Error('start the mesh with { metrics: true } to read its metrics');
      return metricSum(metricsBase, service, name, labels);
    },
    dial: (Ctor, service, identity = OPERATOR) => dial(Ctor as never, services.addrs[service], linkAs(identity, service)),
    natsOutage: async (ms) => {
      nats.process.kill('SIGKILL');
      if (nats.process.exitCode === null && nats.process.signalCode === null) await new Promise((r) => nats.process.once('exit', r));
      await new Promise((r) => setTimeout(r, ms));
      nats = await startNatsServer({ port: nats.port, storeDir: natsStore, users: creds.natsUsers });
      mesh.nats = nats;
    },
    stop: async () => {
      gateway.close();
      usage.close();
      await services.stop();
      await Promise.all([redis.stop(), nats.stop(), simulator.close()]);
      rmSync(natsStore, { recursive: true, force: true });
      rmSync(pkiDir, { recursive: true, force: true });
    },
  };
  return mesh;
}

/** What dialling `peer` with `identity`'s certificate of `pki` needs; the edge's port is public: plaintext on loopback, like `npm start`. */
export function meshLinks(pki: MeshCertificates): (identity: MeshIdentity, peer: ServiceName) => ChannelLink {
  const transports = new Map<MeshIdentity, ReturnType<typeof meshTls>>();
  return (identity, peer) => {
    if (peer === 'edge') return PLAINTEXT.channelTo(peer);
    let t = transports.get(identity);
    if (!t) transports.set(identity, (t = meshTls(meshTlsFilesIn(pki.dirOf(identity)), 60_000)));
    return t.channelTo(peer);
  };
}

/** Starts a mesh before the file's tests and stops it after; call the returned function inside tests. */
export function useTestMesh(): () => TestMesh {
  let mesh: TestMesh | undefined;
  beforeAll(async () => {
    mesh = await startTestMesh();
  }, 60_000);
  afterAll(async () => {
    await mesh?.stop();
  });
  return () => {
    if (!mesh) throw new Error('the test mesh did not start');
    return mesh;
  };
}

export function bearer(key: string): Metadata {
  const md = new Metadata();
  md.set('authorization', `Bearer ${key}`);
  return md;
}

export function userChat(content: string, extra: Partial<ChatRequest> = {}): ChatRequest {
  return ChatRequest.fromPartial({ messages: [{ role: Role.ROLE_USER, content }], ...extra });
}

export type CallResult<T> = { ok: true; value: T; trailers?: Metadata } | { ok: false; error: ServiceError };

export function chat(client: GatewayServiceClient, key: string, req: ChatRequest, timeoutMs = 15_000): Promise<CallResult<ChatResponse>> {
  return new Promise((resolve) => {
    client.chat(req, bearer(key), { deadline: Date.now() + timeoutMs }, (err, res) => {
      resolve(err ? { ok: false, error: err } : { ok: true, value: res });
    });
  });
}

export function getUsage(client: UsageServiceClient, key: string, req: Partial<GetUsageRequest>): Promise<CallResult<GetUsageResponse>> {
  return new Promise((resolve) => {
    client.getUsage(GetUsageRequest.fromPartial(req), bearer(key), { deadline: Date.now() + 10_000 }, (err, res) => {
      resolve(err ? { ok: false, error: err } : { ok: true, value: res });
    });
  });
}

/** Collects a whole stream; the error, if the stream ended on one, comes with what was received before it. */
export function chatStream(
  client: GatewayServiceClient,
  key: string,
  req: ChatRequest,
  opts: { timeoutMs?: number; cancelAfter?: number } = {},
): Promise<{ chunks: ChatStreamResponse[]; error?: ServiceError }> {
  return new Promise((resolve) => {
    const chunks: ChatStreamResponse[] = [];
    const call = client.chatStream(req, bearer(key), { deadline: Date.now() + (opts.timeoutMs ?? 15_000) });
    call.on('data', (c: ChatStreamResponse) => {
      chunks.push(c);
      if (opts.cancelAfter !== undefined && chunks.length >= opts.cancelAfter) call.cancel();
    });
    call.on('error', (error: ServiceError) => resolve({ chunks, error }));
    call.on('end', () => resolve({ chunks }));
  });
}

export async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await fn();
  while (!ok(last) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    last = await fn();
  }
  return last;
}
