/**
 * Renders the Kubernetes manifests of the mesh from one template, so that the six services
 * cannot drift apart:  npx tsx deploy/k8s/render.ts --image 'registry/llmgw-{service}:TAG' | kubectl apply -f -
 * (deploy/README.md walks through a real cluster: secrets, issuer, NATS and Redis charts, scaling).
 * Each service has an image of its own (deploy/docker/Dockerfile, --build-arg SERVICE=<service>) that
 * runs its bundle from `npm run build` with plain Node.js.
 * Each service gets a Deployment or StatefulSet (gRPC liveness/readiness probes on grpc.health.v1, SIGTERM
 * drain, CPU and memory requests and limits), a Service (headless but the edge's), an HPA, a
 * PodDisruptionBudget and a NetworkPolicy. Redis and NATS JetStream are expected at redis:6379 and
 * nats:4222, installed from their charts (a Redis Cluster and a 3-node JetStream cluster).
 * Every pod serves Prometheus metrics on port `metrics` (METRICS_PORT) with prometheus.io/* scrape annotations.
 *
 * Each secret goes only to its owner (the config file itself, ConfigMap `llmgw-config`, holds
 * `${ENV}` references, never secrets; each service resolves only its own sections' references):
 *  - Secret `llmgw-provider-keys` (e.g. OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY): only
 *    provider-executor, the one service that reads the `providers` section.
 *  - Secret `llmgw-bootstrap-keys` (the `api_keys[].key` variables, e.g. DEMO_ADMIN_KEY): only auth.
 *  - Secret `llmgw-credentials-<service>`: its NATS user's password (`nats-password`) and, where it
 *    uses Redis, its Redis user's (`redis-password`); the users are named after the service and
 *    their rights are libs/events permissions.ts and libs/redis acl.ts.
 * All are created by the operator (not rendered here, so applying never overwrites them).
 * REDIS_URL goes only to the services that use Redis (auth, quota, provider-executor for the response cache, usage-accountant).
 *
 * Mutual TLS: a cert-manager Certificate per service (and one for operators) issued by the Issuer
 * `llmgw-mesh-ca` (a CA issuer, Vault, ... : the site's choice, not rendered here), with the URI
 * SAN spiffe://llmgateway/<service> the servers authorize by. Each pod mounts only its own secret
 * (`llmgw-tls-<service>`: ca.crt, tls.crt, tls.key) at MESH_TLS_DIR; cert-manager renews it in
 * place and the services re-read it. Kubelet's gRPC probes cannot present a certificate, so each
 * pod also serves health alone, in plaintext, on port `probe` (GRPC_HEALTH_PROBE_ADDR).
 *
 * Load balancing: a client's channel to a Service name is one HTTP/2 connection, so behind a
 * cluster IP every call of a client goes to the one pod it happened to connect to. Internal
 * Services are therefore headless (DNS lists every ready pod) and dial() balances round robin over
 * what the name resolves to; servers age connections out (GRPC_MAX_CONNECTION_AGE_MS), which makes
 * clients resolve again and pick up replicas the HPA added. The edge's multiplexed calls to quota
 * and the executor ride EDGE_MUX_STREAMS streams per upstream, each placed by that round robin.
 *
 * Network policies: a default deny for the mesh's pods, then per service what the access table
 * (libs/runtime mesh-access.ts, callersOf) lets call it, on its gRPC port only; see networkPolicy().
 *
 * provider-executor is a StatefulSet: each replica keeps its usage journal (write-ahead notes of
 * attempts and unpublished usage events) on its own PersistentVolume, so a pod that is killed or
 * rescheduled publishes what it billed when it comes back. Scaling down leaves the volume of the
 * removed ordinal; SIGTERM drains its journal first (DRAIN_MS, terminationGracePeriodSeconds).
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { ICertificate } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { INetworkPolicyEgressRule } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyEgressRule';
import type { INetworkPolicyPeer } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPeer';
import type { INetworkPolicyPort } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPort';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IPodTemplateSpec } from 'kubernetes-models/v1/PodTemplateSpec';
import type { IService } from 'kubernetes-models/v1/Service';
import { stringify } from 'yaml';
import { authService } from '@llmgw/auth';
import { edgeService } from '@llmgw/edge';
import { BUS_ROLES } from '@llmgw/events';
import { providerExecutorService } from '@llmgw/provider-executor';
import { quotaService } from '@llmgw/quota';
import { routerService } from '@llmgw/router';
import { spiffeId } from '@llmgw/grpc';
import { ADDR_ENV, callersOf, DEFAULT_PORTS, OPERATOR, SERVICE_NAMES, SERVICE_NODE_FLAGS, type MeshIdentity, type ServiceName } from '@llmgw/runtime';
import { usageAccountantService } from '@llmgw/usage-accountant';

export const PROVIDER_KEYS_SECRET = 'llmgw-provider-keys';
export const BOOTSTRAP_KEYS_SECRET = 'llmgw-bootstrap-keys';
export const MESH_ISSUER = 'llmgw-mesh-ca';
export const tlsSecretOf = (identity: string) => `llmgw-tls-${identity}`;
/** A service's NATS and Redis passwords (keys `nats-password`, `redis-password`); its users are named after it. */
export const credentialsSecretOf = (service: ServiceName) => `llmgw-credentials-${service}`;
const TLS_DIR = '/etc/llmgw/tls';
const PROBE_PORT = 50099;

/**
 * The pod label naming the mesh identity (the certificate) a pod holds, which the network
 * policies admit callers by. Operators' tool pods (grpcurl, nats-box) carry `operator`.
 */
const IDENTITY_LABEL = 'llmgw.io/identity';
const PART_OF = { 'app.kubernetes.io/part-of': 'llm-gateway' };

/** The secrets each service may read (as environment variables). */
export const SECRETS: Record<ServiceName, readonly string[]> = {
  edge: [],
  auth: [BOOTSTRAP_KEYS_SECRET],
  quota: [],
  router: [],
  'provider-executor': [PROVIDER_KEYS_SECRET],
  'usage-accountant': [],
};

/** Services that use Redis: what their ServiceDefinition says. */
export const USES_REDIS: ReadonlySet<ServiceName> = new Set(
  [authService, edgeService, providerExecutorService, quotaService, routerService, usageAccountantService].filter((d) => d.needsRedis).map((d) => d.name),
);

/** Services that publish or consume on NATS: those with anything in their bus role (libs/events permissions.ts). */
export const USES_NATS: ReadonlySet<ServiceName> = new Set(SERVICE_NAMES.filter((n) => Object.values(BUS_ROLES[n]).some((subjects) => subjects.length > 0)));

/**
 * Services that call out of the cluster over HTTPS: the executor calls the providers, the
 * accountant posts alerts to the config's webhooks. Nothing else leaves the cluster.
 */
const EGRESS_HTTPS: ReadonlySet<ServiceName> = new Set(['provider-executor', 'usage-accountant']);

const REDIS_PORT = 6379;
const NATS_PORT = 4222;
/** Copies of each stream the services create: one per node of the three-node JetStream cluster, so a stream outlives a node. */
export const STREAM_REPLICAS = 3;

/**
 * Requests are what the scheduler reserves and what the HPA's 65% is of. Memory's limit is its
 * request (memory cannot be throttled, only killed: no pod may lean on its neighbours'). CPU's
 * limit is a ceiling of at least one core: Node.js runs JavaScript on one thread, and a limit
 * under a core throttles the event loop in every 100 ms CFS period (latency spikes); above the
 * request it lets a pod absorb a burst while the HPA adds replicas.
 */
const SCALING: Record<ServiceName, { min: number; max: number; cpu: string; cpuLimit: string; memory: string }> = {
  edge: { min: 3, max: 30, cpu: '1', cpuLimit: '2', memory: '512Mi' },
  auth: { min: 2, max: 10, cpu: '250m', cpuLimit: '1', memory: '256Mi' },
  quota: { min: 2, max: 20, cpu: '500m', cpuLimit: '1', memory: '256Mi' },
  router: { min: 2, max: 10, cpu: '250m', cpuLimit: '1', memory: '256Mi' },
  'provider-executor': { min: 3, max: 40, cpu: '1', cpuLimit: '2', memory: '768Mi' },
  'usage-accountant': { min: 2, max: 6, cpu: '250m', cpuLimit: '1', memory: '256Mi' },
};

/**
 * Servers tell each connection to go away after this (jittered ±10%): each client's channel then
 * resolves its upstream's headless Service again and connects to replicas added since. It bounds
 * how long a new replica waits for traffic; a reconnect costs one TLS handshake a minute per pair.
 */
const MAX_CONNECTION_AGE_MS = 60_000;

/** Where each replica with a durable journal keeps it (a PersistentVolume per replica). */
export const DURABLE_STATE: Partial<Record<ServiceName, { env: string; dir: string; file: string; size: string }>> = {
  'provider-executor': { env: 'USAGE_OUTBOX_PATH', dir: '/var/lib/llmgw', file: 'usage.journal', size: '2Gi' },
};

/** Same in every pod: each service is its own pod, so no offsets are needed. */
const METRICS_PORT = 9464;
/** The edge's OpenAI- and Anthropic-compatible HTTP surface. */
export const EDGE_HTTP_PORT = 8080;
/** Enough streams per edge that its calls reach several quota and executor replicas at once (two would pin two). */
export const EDGE_MUX_STREAMS = 8;
/** The accountant's usage dashboard. */
export const DASHBOARD_PORT = 8081;

export interface RenderOptions {
  /** The image of each service, `{service}` standing for its name. */
  image: string;
  namespace: string;
  /**
   * Where the public ports (the edge's gRPC and HTTP, the accountant's dashboard) take traffic
   * from: a namespace (the ingress controller's); unset: anywhere. Callers bring API keys there.
   */
  publicNamespace?: string;
  /** The namespace of the Prometheus that scrapes the `metrics` ports (and Redis's and NATS's exporters). */
  prometheusNamespace?: string;
  /**
   * Where Redis is, without credentials (each service's user and password are put in): one
   * server, `redis://redis:6379` (the default), or a cluster seed, `redis-cluster://redis:6379`.
   */
  redis?: string;
  /** Labels of the Redis pods (default: Bitnami's redis-cluster chart's). */
  redisPods?: Record<string, string>;
  /** Labels of the NATS server pods (default: the nats-io/k8s `nats` chart's). */
  natsPods?: Record<string, string>;
}

export const RENDER_DEFAULTS = {
  prometheusNamespace: 'monitoring',
  redis: `redis://redis:${REDIS_PORT}`,
  redisPods: { 'app.kubernetes.io/name': 'redis-cluster' },
  natsPods: { 'app.kubernetes.io/name': 'nats', 'app.kubernetes.io/component': 'nats' },
} satisfies Partial<RenderOptions>;

type Resolved = Required<Omit<RenderOptions, 'publicNamespace'>> & Pick<RenderOptions, 'publicNamespace'>;

const dependencyEnv: IEnvVar[] = SERVICE_NAMES.map((n) => ({ name: ADDR_ENV[n], value: `${n}:${DEFAULT_PORTS[n]}` }));

/** A service's NATS user and, where it uses Redis, its Redis user: both named after it, passwords from its own secret. */
function credentialsEnv(name: ServiceName, opts: Resolved): IEnvVar[] {
  const password = (key: string) => ({ secretKeyRef: { name: credentialsSecretOf(name), key } });
  const redis = /^([a-z][a-z0-9+.-]*:\/\/)(.+)$/.exec(opts.redis);
  if (!redis) throw new Error(`redis: expected scheme://host:port, got ${opts.redis}`);
  return [
    { name: 'NATS_URL', value: `nats://nats:${NATS_PORT}` },
    ...(USES_NATS.has(name)
      ? [
          { name: 'NATS_USER', value: name },
          { name: 'NATS_PASSWORD', valueFrom: password('nats-password') },
          { name: 'NATS_STREAM_REPLICAS', value: String(STREAM_REPLICAS) },
        ]
      : []),
    ...(USES_REDIS.has(name)
      ? [
          { name: 'REDIS_PASSWORD', valueFrom: password('redis-password') },
          // Kubernetes expands $(REDIS_PASSWORD), defined just above (passwords must be URL-safe).
          { name: 'REDIS_URL', value: `${redis[1]}${name}:$(REDIS_PASSWORD)@${redis[2]}` },
        ]
      : []),
  ];
}

function workload(name: ServiceName, opts: Resolved): IDeployment | IStatefulSet {
  const port = DEFAULT_PORTS[name];
  const s = SCALING[name];
  const labels = { app: name, [IDENTITY_LABEL]: name, ...PART_OF };
  const probe = { grpc: { port: PROBE_PORT }, periodSeconds: 5 };
  const secrets = SECRETS[name];
  const state = DURABLE_STATE[name];
  const metadata = { name, namespace: opts.namespace, labels };
  const template: IPodTemplateSpec = {
    metadata: {
      labels,
      annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(METRICS_PORT), 'prometheus.io/path': '/metrics' },
    },
    spec: {
      terminationGracePeriodSeconds: 30,
      // No Kubernetes API token in pods that never call the API.
      automountServiceAccountToken: false,
      // Replicas on different nodes and zones where the cluster has room: one node's loss takes few.
      topologySpreadConstraints: ['kubernetes.io/hostname', 'topology.kubernetes.io/zone'].map((topologyKey) => ({
        maxSkew: 1,
        topologyKey,
        whenUnsatisfiable: 'ScheduleAnyway',
        labelSelector: { matchLabels: { app: name } },
      })),
      containers: [
        {
          name,
          image: opts.image.replaceAll('{service}', name),
          command: ['node', ...SERVICE_NODE_FLAGS, `dist/services/${name}/main.js`],
          env: [
            { name: 'SERVICE', value: name },
            { name: 'GRPC_LISTEN_ADDR', value: `0.0.0.0:${port}` },
            { name: 'GRPC_MAX_CONNECTION_AGE_MS', value: String(MAX_CONNECTION_AGE_MS) },
            { name: 'DRAIN_MS', value: '5000' },
            { name: 'METRICS_PORT', value: String(METRICS_PORT) },
            ...credentialsEnv(name, opts),
            { name: 'GATEWAY_CONFIG', value: '/etc/llmgw/gateway.yaml' },
            { name: 'MESH_TLS_DIR', value: TLS_DIR },
            { name: 'GRPC_HEALTH_PROBE_ADDR', value: `0.0.0.0:${PROBE_PORT}` },
            ...dependencyEnv,
            ...(state ? [{ name: state.env, value: `${state.dir}/${state.file}` }] : []),
            ...(name === 'edge'
              ? [
                  { name: 'EDGE_HTTP_ADDR', value: `0.0.0.0:${EDGE_HTTP_PORT}` },
                  // An edge's reserve and execute calls ride this many streams per upstream, each on the replica round robin gave it.
                  { name: 'EDGE_MUX_STREAMS', value: String(EDGE_MUX_STREAMS) },
                ]
              : []),
            ...(name === 'usage-accountant' ? [{ name: 'ACCOUNTANT_HTTP_ADDR', value: `0.0.0.0:${DASHBOARD_PORT}` }] : []),
          ],
          ...(secrets.length > 0 ? { envFrom: secrets.map((secret) => ({ secretRef: { name: secret, optional: true } })) } : {}),
          ports: [
            { name: 'grpc', containerPort: port },
            { name: 'metrics', containerPort: METRICS_PORT },
            { name: 'probe', containerPort: PROBE_PORT },
            ...(name === 'edge' ? [{ name: 'http', containerPort: EDGE_HTTP_PORT }] : []),
            ...(name === 'usage-accountant' ? [{ name: 'dashboard', containerPort: DASHBOARD_PORT }] : []),
          ],
          readinessProbe: probe,
          livenessProbe: { ...probe, failureThreshold: 6 },
          resources: { requests: { cpu: s.cpu, memory: s.memory }, limits: { cpu: s.cpuLimit, memory: s.memory } },
          volumeMounts: [
            { name: 'config', mountPath: '/etc/llmgw', readOnly: true },
            { name: 'tls', mountPath: TLS_DIR, readOnly: true },
            ...(state ? [{ name: 'state', mountPath: state.dir }] : []),
          ],
        },
      ],
      volumes: [
        { name: 'config', configMap: { name: 'llmgw-config' } },
        { name: 'tls', secret: { secretName: tlsSecretOf(name), defaultMode: 0o400 } },
      ],
    },
  };
  const selector = { matchLabels: { app: name } };
  if (!state) return { apiVersion: 'apps/v1', kind: 'Deployment', metadata, spec: { selector, template } };
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata,
    spec: {
      selector,
      // Its headless Service (below) is the governing one.
      serviceName: name,
      // Replicas are interchangeable; only their volumes are their own.
      podManagementPolicy: 'Parallel',
      volumeClaimTemplates: [{ metadata: { name: 'state' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: state.size } } } }],
      template,
    },
  };
}

/**
 * Internal services are headless (no cluster IP): their DNS name lists every ready pod, and the
 * callers' channels (dial(): round robin) connect to each and take turns. A cluster IP would give
 * each client one connection to one pod, however many replicas there are. The edge keeps a cluster
 * IP: its callers are outside the mesh, behind the site's load balancer or ingress.
 */
function service(name: ServiceName, opts: Resolved): IService {
  const port = DEFAULT_PORTS[name];
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: opts.namespace, labels: { app: name, ...PART_OF } },
    spec: {
      ...(name === 'edge' ? {} : { clusterIP: 'None' }),
      selector: { app: name },
      ports: [
        { name: 'grpc', port, targetPort: port, appProtocol: 'grpc' },
        ...(name === 'edge' ? [{ name: 'http', port: EDGE_HTTP_PORT, targetPort: EDGE_HTTP_PORT, appProtocol: 'http' }] : []),
        ...(name === 'usage-accountant' ? [{ name: 'dashboard', port: DASHBOARD_PORT, targetPort: DASHBOARD_PORT, appProtocol: 'http' }] : []),
      ],
    },
  };
}

function autoscaler(name: ServiceName, kind: string, opts: Resolved): IHorizontalPodAutoscaler {
  const s = SCALING[name];
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name, namespace: opts.namespace },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind, name },
      minReplicas: s.min,
      maxReplicas: s.max,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 65 } } }],
    },
  };
}

/**
 * maxUnavailable 1 rather than a minAvailable: it holds whatever the HPA has scaled to (a fixed
 * minAvailable equal to the HPA's minimum would block every node drain at that size, and one
 * below it would let a scaled-out service lose most of its replicas at once), and a drain still
 * makes progress one pod at a time. Pods that are not ready anyway may always be evicted, so a
 * crash-looping replica cannot block a drain.
 */
function disruptionBudget(name: ServiceName, opts: Resolved): IPodDisruptionBudget {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name, namespace: opts.namespace },
    spec: { maxUnavailable: 1, unhealthyPodEvictionPolicy: 'AlwaysAllow', selector: { matchLabels: { app: name } } },
  };
}

const identities = (ids: readonly MeshIdentity[]): INetworkPolicyPeer => ({
  podSelector: { matchExpressions: [{ key: IDENTITY_LABEL, operator: 'In', values: [...ids] }] },
});
const namespaceNamed = (ns: string): INetworkPolicyPeer => ({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } } });
const tcp = (...ports: number[]): INetworkPolicyPort[] => ports.map((port) => ({ protocol: 'TCP', port }));
/** Who reaches the public ports: the ingress's namespace, or (no `from`) anyone. */
const publicFrom = (opts: Resolved) => (opts.publicNamespace ? { from: [namespaceNamed(opts.publicNamespace)] } : {});

/**
 * Ingress: the gRPC port from the identities the access table lets call a method of it
 * (callersOf), the public ports from the public, `metrics` from Prometheus, `probe` from anywhere
 * (kubelet's source address is the node's). Egress: DNS, the gRPC ports of the services it may
 * call (by the same table), Redis and NATS where it uses them, HTTPS out of the cluster where it
 * calls providers or webhooks. A pod is still only reached with a mesh certificate: the policies
 * are the second wall, against what a stolen certificate or a compromised pod can reach.
 */
function networkPolicy(name: ServiceName, opts: Resolved): INetworkPolicy {
  const callers = callersOf(name);
  const callees = SERVICE_NAMES.filter((other) => {
    const c = callersOf(other);
    return c !== 'public' && c.includes(name);
  });
  const egress: INetworkPolicyEgressRule[] = [
    // Wherever the cluster's resolver is (kube-dns, NodeLocal DNSCache's link-local address).
    { ports: [{ protocol: 'UDP', port: 53 }, ...tcp(53)] },
    ...callees.map((callee) => ({ to: [identities([callee])], ports: tcp(DEFAULT_PORTS[callee]) })),
    ...(USES_REDIS.has(name) ? [{ to: [{ podSelector: { matchLabels: opts.redisPods } }], ports: tcp(REDIS_PORT) }] : []),
    ...(USES_NATS.has(name) ? [{ to: [{ podSelector: { matchLabels: opts.natsPods } }], ports: tcp(NATS_PORT) }] : []),
    ...(EGRESS_HTTPS.has(name) ? [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }, { ipBlock: { cidr: '::/0' } }], ports: tcp(443) }] : []),
  ];
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: opts.namespace },
    spec: {
      podSelector: { matchLabels: { app: name } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [
        callers === 'public' ? { ...publicFrom(opts), ports: tcp(DEFAULT_PORTS[name], EDGE_HTTP_PORT) } : { from: [identities(callers)], ports: tcp(DEFAULT_PORTS[name]) },
        ...(name === 'usage-accountant' ? [{ ...publicFrom(opts), ports: tcp(DASHBOARD_PORT) }] : []),
        { from: [namespaceNamed(opts.prometheusNamespace)], ports: tcp(METRICS_PORT) },
        { ports: tcp(PROBE_PORT) },
      ],
      egress,
    },
  };
}

/** Nothing reaches or leaves a mesh pod unless a policy above allows it (a pod of the mesh without one of its own included). */
function defaultDeny(opts: Resolved): INetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'llmgw-default-deny', namespace: opts.namespace },
    spec: { podSelector: { matchLabels: PART_OF }, policyTypes: ['Ingress', 'Egress'] },
  };
}

/**
 * Redis or NATS (installed from their charts, see deploy/README.md): their client port from the
 * services that use them and operators' pods (the admin users), anything from each other (cluster
 * bus, routes, replication) and from Prometheus (the charts' exporters).
 */
function dependencyPolicy(policyName: string, pods: Record<string, string>, port: number, users: ReadonlySet<ServiceName>, opts: Resolved): INetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: policyName, namespace: opts.namespace },
    spec: {
      podSelector: { matchLabels: pods },
      policyTypes: ['Ingress'],
      ingress: [
        { from: [identities([...users, OPERATOR])], ports: tcp(port) },
        { from: [{ podSelector: { matchLabels: pods } }] },
        { from: [namespaceNamed(opts.prometheusNamespace)] },
      ],
    },
  };
}

function manifests(name: ServiceName, opts: Resolved): object[] {
  const w = workload(name, opts);
  return [w, service(name, opts), certificate(name, opts), autoscaler(name, w.kind, opts), disruptionBudget(name, opts), networkPolicy(name, opts)];
}

/** cert-manager's Certificate for one identity: ECDSA P-256, renewed well before it expires. */
function certificate(identity: string, opts: Resolved): ICertificate {
  return {
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: { name: tlsSecretOf(identity), namespace: opts.namespace },
    spec: {
      secretName: tlsSecretOf(identity),
      duration: '720h',
      renewBefore: '240h',
      privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
      usages: ['digital signature', 'server auth', 'client auth'],
      uris: [spiffeId(identity)],
      dnsNames: [identity, `${identity}.${opts.namespace}.svc`, `${identity}.${opts.namespace}.svc.cluster.local`],
      issuerRef: { name: MESH_ISSUER, kind: 'Issuer' },
    },
  };
}

/** Every manifest of the mesh, the operators' certificate (for grpcurl and admin tools) and the network policies around it. */
export function renderManifests(options: RenderOptions): object[] {
  const opts: Resolved = { ...RENDER_DEFAULTS, ...options };
  return [
    ...SERVICE_NAMES.flatMap((n) => manifests(n, opts)),
    certificate(OPERATOR, opts),
    defaultDeny(opts),
    dependencyPolicy('llmgw-redis', opts.redisPods, REDIS_PORT, USES_REDIS, opts),
    dependencyPolicy('llmgw-nats', opts.natsPods, NATS_PORT, USES_NATS, opts),
  ];
}

/** The manifests as one multi-document YAML stream. */
export function renderYaml(opts: RenderOptions): string {
  return renderManifests(opts)
    .map((m) => stringify(m, { aliasDuplicateObjects: false }))
    .join('---\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const image = 'llmgw-{service}:latest';
  const { values } = parseArgs({
    options: {
      image: { type: 'string', default: image },
      namespace: { type: 'string', default: 'llmgw' },
      'public-namespace': { type: 'string' },
      'prometheus-namespace': { type: 'string', default: RENDER_DEFAULTS.prometheusNamespace },
      redis: { type: 'string', default: RENDER_DEFAULTS.redis },
    },
  });
  process.stdout.write(
    renderYaml({
      image: values.image ?? image,
      namespace: values.namespace ?? 'llmgw',
      publicNamespace: values['public-namespace'],
      prometheusNamespace: values['prometheus-namespace'],
      redis: values.redis,
    }),
  );
}
