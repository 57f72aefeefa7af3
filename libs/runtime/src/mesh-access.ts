import type { MethodAccess } from '@llmgw/grpc';
import type { ServiceName } from './service.js';

/**
 * Who may call what inside the mesh: for each service's server, each method's full path and
 * the identities (certificate SANs spiffe://llmgateway/<identity>) allowed to call it. `operator`
 * is the certificate of people and tools (grpcurl, `npm run` scripts); admin methods also need
 * an admin-scoped API key, which the method checks. `public` methods are the edge's API: any
 * caller, authenticated by API key. Anything not listed is refused (PERMISSION_DENIED).
 */
export const OPERATOR = 'operator';
export type MeshIdentity = ServiceName | typeof OPERATOR;

type Access = readonly MeshIdentity[] | 'public';

const HEALTH = '/grpc.health.v1.Health/';
const REFLECTION = ['/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo'];

export const MESH_ACCESS: Record<ServiceName, Record<string, Access>> = {
  edge: {
    '/llmgateway.v1.GatewayService/Chat': 'public',
    '/llmgateway.v1.GatewayService/ChatStream': 'public',
    '/llmgateway.v1.GatewayService/Embed': 'public',
    '/llmgateway.v1.UsageService/GetUsage': 'public',
  },
  auth: {
    // Every service that answers callers directly asks auth who they are.
    '/llmgateway.auth.v1.AuthService/Authenticate': ['edge', 'quota', 'usage-accountant'],
    '/llmgateway.auth.v1.AuthService/CreateKey': [OPERATOR],
    '/llmgateway.auth.v1.AuthService/RevokeKey': [OPERATOR],
    '/llmgateway.auth.v1.AuthService/RotateKey': [OPERATOR],
    '/llmgateway.auth.v1.AuthService/ListKeys': [OPERATOR],
  },
  quota: {
    '/llmgateway.quota.v1.QuotaService/ReserveQuota': ['edge'],
    '/llmgateway.quota.v1.QuotaService/ReleaseQuota': ['edge'],
    '/llmgateway.quota.v1.QuotaService/GetQuotaStatus': [OPERATOR],
    '/llmgateway.quota.v1.QuotaService/ResetQuota': [OPERATOR],
    // Each call on it is checked against the lines above.
    '/llmgateway.mux.v1.MultiplexerService/Calls': ['edge'],
  },
  router: {
    '/llmgateway.router.v1.RouterService/PlanRoute': ['edge'],
    '/llmgateway.router.v1.RouterService/ListModels': ['edge'],
  },
  'provider-executor': {
    '/llmgateway.executor.v1.ExecutorService/ExecuteChat': ['edge'],
    '/llmgateway.executor.v1.ExecutorService/ExecuteChatStream': ['edge'],
    '/llmgateway.executor.v1.ExecutorService/ExecuteEmbed': ['edge'],
    '/llmgateway.mux.v1.MultiplexerService/Calls': ['edge'],
  },
  'usage-accountant': {
    '/llmgateway.v1.UsageService/GetUsage': ['edge', OPERATOR],
  },
};

/** Health is open to every mesh identity (and public on the edge); reflection is for operators (public on the edge). */
function commonAccess(service: ServiceName, path: string): Access | undefined {
  const open = service === 'edge';
  if (path.startsWith(HEALTH)) return open ? 'public' : ALL_IDENTITIES;
  if (REFLECTION.includes(path)) return open ? 'public' : [OPERATOR];
  return undefined;
}

const ALL_IDENTITIES: readonly MeshIdentity[] = [...(Object.keys(MESH_ACCESS) as ServiceName[]), OPERATOR];

/** The policy of one service's server, for createGrpcServer. */
export function accessOf(service: ServiceName): MethodAccess {
  const table = MESH_ACCESS[service];
  return (path) => (Object.hasOwn(table, path) ? table[path] : commonAccess(service, path));
}

/**
 * Who may connect to a service's gRPC port at all, for the network policy in front of the
 * certificates (deploy/k8s NetworkPolicies): the identities any of its methods or its reflection
 * admits, or `public` where one method is public. Health's access is left out: it admits every
 * identity so that anyone may look, but no service calls another's (kubelet probes the plaintext
 * probe port), and counting it would open every port to every pod.
 */
export function callersOf(service: ServiceName): 'public' | MeshIdentity[] {
  const access = accessOf(service);
  const admitted = [...Object.keys(MESH_ACCESS[service]), ...REFLECTION].map(access);
  if (admitted.includes('public')) return 'public';
  return ALL_IDENTITIES.filter((id) => admitted.some((a) => a?.includes(id)));
}
