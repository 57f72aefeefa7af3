import { Server, ServerCredentials, type ChannelOptions, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import type { PackageDefinition } from '@grpc/proto-loader';
import { envInt, envString, parseEnv } from '@llmgw/config';
import { PROTO_FILES, PROTO_ROOT } from '@llmgw/proto/files';
import { z } from 'zod';
import { authorizeCalls, type MethodAccess } from './authorize.js';
import { HealthStatus } from './health.js';
import { PLAINTEXT, type MeshTransport } from './mesh-tls.js';
import type { LocalCalls, MultiplexedRoutes } from './mux.js';

/** What one server accepts from its callers; from the environment (serverLimitsFromEnv) unless given. */
export interface ServerLimits {
  /** Largest request message (GRPC_MAX_RECEIVE_BYTES, default 4 MiB). */
  maxReceiveBytes: number;
  /** Calls at once on one HTTP/2 connection (GRPC_MAX_CONCURRENT_STREAMS, default 1,000). */
  maxConcurrentStreams: number;
  /**
   * A connection is told to go away after this (GRPC_MAX_CONNECTION_AGE_MS, default 5 min), so
   * clients reconnect and new replicas behind a Service get their share; calls under way then
   * have 10 min to finish (long streams).
   */
  maxConnectionAgeMs: number;
}

export const serverLimitsEnvSchema = z.object({
  GRPC_MAX_RECEIVE_BYTES: envInt({ min: 64 * 1024, default: 4 * 1024 * 1024 }),
  GRPC_MAX_CONCURRENT_STREAMS: envInt({ min: 1, default: 1_000 }),
  GRPC_MAX_CONNECTION_AGE_MS: envInt({ min: 1_000, default: 5 * 60_000 }),
});

export function serverLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): ServerLimits {
  const v = parseEnv(serverLimitsEnvSchema, env);
  return { maxReceiveBytes: v.GRPC_MAX_RECEIVE_BYTES, maxConcurrentStreams: v.GRPC_MAX_CONCURRENT_STREAMS, maxConnectionAgeMs: v.GRPC_MAX_CONNECTION_AGE_MS };
}

function serverOptions(limits: ServerLimits): ChannelOptions {
  return {
    // Channelz keeps per-call statistics nobody reads here; it costs CPU on every call.
    'grpc.enable_channelz': 0,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_receive_message_length': limits.maxReceiveBytes,
    'grpc.max_concurrent_streams': limits.maxConcurrentStreams,
    'grpc.max_connection_age_ms': limits.maxConnectionAgeMs,
    'grpc.max_connection_age_grace_ms': 10 * 60_000,
  };
}

const HEALTH_SERVICE = 'grpc.health.v1.Health';
let descriptors: PackageDefinition | undefined;

/** Reflection that lists exactly what this server serves. */
function reflectionFor(serviceNames: string[]): ReflectionService {
  // Parsing the protos once per process is enough: every server shares the same descriptor set.
  descriptors ??= loadSync([...PROTO_FILES, healthProtoPath], { includeDirs: [PROTO_ROOT] });
  return new ReflectionService(descriptors, { services: [...serviceNames, HEALTH_SERVICE] });
}

type Registrations = { definition: ServiceDefinition; implementation: UntypedServiceImplementation }[];

/** What a ReflectionService registers on a server (its v1 and v1alpha services), without a server. */
function registrationsOf(reflection: ReflectionService): Registrations {
  const out: Registrations = [];
  reflection.addToServer({ addService: (definition: ServiceDefinition, implementation: UntypedServiceImplementation) => out.push({ definition, implementation }) } as unknown as Server);
  return out;
}

/**
 * Reflection registered at once but built at its first call: the descriptors of every proto take
 * about 20 MB of each process's memory, for a service operators call now and then.
 */
function addLazyReflection(server: Server, serviceNames: string[]): void {
  let real: Registrations | undefined;
  registrationsOf(new ReflectionService({}, { services: [] })).forEach(({ definition }, i) => {
    const implementation: UntypedServiceImplementation = {};
    for (const name of Object.keys(definition)) {
      implementation[name] = ((call: unknown, callback: unknown) => {
        real ??= registrationsOf(reflectionFor(serviceNames));
        const handler = real[i]!.implementation[name] as (call: unknown, callback: unknown) => void;
        handler(call, callback);
      }) as UntypedServiceImplementation[string];
    }
    server.addService(definition, implementation);
  });
}

export interface GrpcServer {
  server: Server;
  transport: MeshTransport;
  /** A plaintext server with health only, for probes that cannot present a certificate (kubelet). */
  probe?: { server: Server; addr: string };
  health: HealthStatus;
  /** Fully qualified names of the services this server serves, for health. */
  serviceNames: string[];
  /** The method access policy its calls are authorized by (TLS servers only). */
  access?: MethodAccess;
  /** What serveMultiplexed() serves, by method path. */
  multiplexed?: MultiplexedRoutes;
  /** Monolithic mode: where listen() makes the multiplexed methods callable in process. */
  local?: LocalCalls;
}

export interface GrpcServerOptions {
  /** Mutual TLS (each call authorized by `access`) or plaintext; default plaintext. */
  transport?: MeshTransport;
  /** Who may call which method; required with a TLS transport. */
  access?: MethodAccess;
  limits?: ServerLimits;
  /** Server reflection (grpcurl, Postman); default on. */
  reflection?: boolean;
  /** Where to serve health alone in plaintext; default GRPC_HEALTH_PROBE_ADDR, unset: nowhere. */
  healthProbeAddr?: string;
  /** Monolithic mode: the process's registry of multiplexed methods, callable without a network. */
  local?: LocalCalls;
}

const probeEnvSchema = z.object({ GRPC_HEALTH_PROBE_ADDR: envString().optional() });

/** A grpc-js server with grpc.health.v1 and, unless turned off, server reflection already registered. */
export function createGrpcServer(serviceNames: string[], opts: GrpcServerOptions = {}): GrpcServer {
  const transport = opts.transport ?? PLAINTEXT;
  if (transport.identity !== undefined && !opts.access) throw new Error('a TLS server needs a method access policy');
  const interceptors = transport.identity !== undefined && opts.access ? [authorizeCalls(opts.access)] : [];
  const server = new Server({ ...serverOptions(opts.limits ?? serverLimitsFromEnv()), interceptors });
  const health = new HealthStatus(serviceNames, 'NOT_SERVING');
  health.addToServer(server);
  if (opts.reflection ?? true) addLazyReflection(server, serviceNames);
  const probeAddr = opts.healthProbeAddr ?? parseEnv(probeEnvSchema, process.env).GRPC_HEALTH_PROBE_ADDR;
  let probe: GrpcServer['probe'];
  if (probeAddr) {
    probe = { server: new Server(serverOptions(serverLimitsFromEnv())), addr: probeAddr };
    health.addToServer(probe.server);
  }
  return { server, transport, health, serviceNames, probe, access: interceptors.length > 0 ? opts.access : undefined, local: opts.local };
}

export function setServing(g: GrpcServer, serving: boolean): void {
  const st = serving ? 'SERVING' : 'NOT_SERVING';
  g.health.setStatus('', st);
  for (const n of g.serviceNames) g.health.setStatus(n, st);
}

/** Binds host:port (port 0 picks a free one) and returns the bound port. */
export async function listen(g: GrpcServer, addr: string): Promise<number> {
  await g.transport.ready();
  if (g.probe) await bind(g.probe.server, g.probe.addr, ServerCredentials.createInsecure());
  const port = await bind(g.server, addr, g.transport.serverCredentials());
  if (g.multiplexed) g.local?.register(addr, g.multiplexed);
  setServing(g, true);
  return port;
}

function bind(server: Server, addr: string, creds: ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(addr, creds, (err, port) => (err ? reject(new Error(`cannot listen on ${addr}: ${err.message}`)) : resolve(port)));
  });
}

/**
 * Drains: reports NOT_SERVING so load balancers stop sending, waits drainMs, then lets in-flight
 * calls finish, forcing the rest after graceMs.
 */
export async function drain(g: GrpcServer, drainMs: number, graceMs = 10_000): Promise<void> {
  setServing(g, false);
  if (g.multiplexed) g.local?.unregister(g.multiplexed);
  if (drainMs > 0) await new Promise((r) => setTimeout(r, drainMs));
  await new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      g.server.forceShutdown();
      resolve();
    }, graceMs);
    g.server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
  g.probe?.server.forceShutdown();
}
