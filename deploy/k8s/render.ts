/**
 * Renders the Kubernetes manifests of the mesh from one template, so that the six services
 * cannot drift apart:  npx tsx deploy/k8s/render.ts --image 'registry/llmgw-{service}:TAG' | kubectl apply -f -
 * Each service has an image of its own (deploy/docker/Dockerfile, --build-arg SERVICE=<service>) that
 * runs its bundle from `npm run build` with plain Node.js.
 * Each service gets a Deployment or StatefulSet (gRPC liveness/readiness probes on grpc.health.v1, SIGTERM drain),
 * a Service and an HPA. Redis and NATS JetStream are expected at redis:6379 and nats:4222
 * (Redis Sentinel/Cluster and a 3-node JetStream cluster in production).
 * Every pod serves Prometheus metrics on port `metrics` (METRICS_PORT) with prometheus.io/* scrape annotations.
 *
 * Each secret goes only to its owner (the config file itself, ConfigMap `llmgw-config`, holds
 * `${ENV}` references, never secrets; each service resolves only its own sections' references):
 *  - Secret `llmgw-provider-keys` (e.g. OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY): only
 *    provider-executor, the one service that reads the `providers` section.
 *  - Secret `llmgw-bootstrap-keys` (the `api_keys[].key` variables, e.g. DEMO_ADMIN_KEY): only auth.
 * Both are created by the operator (not rendered here, so applying never overwrites them).
 * REDIS_URL goes only to the services that use Redis (auth, quota, provider-executor for the response cache, usage-accountant).
 *
 * Mutual TLS: a cert-manager Certificate per service (and one for operators) issued by the Issuer
 * `llmgw-mesh-ca` (a CA issuer, Vault, ... : the site's choice, not rendered here), with the URI
 * SAN spiffe://llmgateway/<service> the servers authorize by. Each pod mounts only its own secret
 * (`llmgw-tls-<service>`: ca.crt, tls.crt, tls.key) at MESH_TLS_DIR; cert-manager renews it in
 * place and the services re-read it. Kubelet's gRPC probes cannot present a certificate, so each
 * pod also serves health alone, in plaintext, on port `probe` (GRPC_HEALTH_PROBE_ADDR).
 *
 * provider-executor is a StatefulSet: each replica keeps its usage journal (write-ahead notes of
 * attempts and unpublished usage events) on its own PersistentVolume, so a pod that is killed or
 * rescheduled publishes what it billed when it comes back. Scaling down leaves the volume of the
 * removed ordinal; SIGTERM drains its journal first (DRAIN_MS, terminationGracePeriodSeconds).
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { authService } from '@llmgw/auth';
import { edgeService } from '@llmgw/edge';
import { providerExecutorService } from '@llmgw/provider-executor';
import { quotaService } from '@llmgw/quota';
import { routerService } from '@llmgw/router';
import { spiffeId } from '@llmgw/grpc';
import { ADDR_ENV, DEFAULT_PORTS, OPERATOR, SERVICE_NAMES, SERVICE_NODE_FLAGS, type ServiceName } from '@llmgw/runtime';
import { usageAccountantService } from '@llmgw/usage-accountant';

export const PROVIDER_KEYS_SECRET = 'llmgw-provider-keys';
export const BOOTSTRAP_KEYS_SECRET = 'llmgw-bootstrap-keys';
export const MESH_ISSUER = 'llmgw-mesh-ca';
export const tlsSecretOf = (identity: string) => `llmgw-tls-${identity}`;
const TLS_DIR = '/etc/llmgw/tls';
const PROBE_PORT = 50099;

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

const SCALING: Record<ServiceName, { min: number; max: number; cpu: string; memory: string }> = {
  edge: { min: 3, max: 30, cpu: '1', memory: '512Mi' },
  auth: { min: 2, max: 10, cpu: '250m', memory: '256Mi' },
  quota: { min: 2, max: 20, cpu: '500m', memory: '256Mi' },
  router: { min: 2, max: 10, cpu: '250m', memory: '256Mi' },
  'provider-executor': { min: 3, max: 40, cpu: '1', memory: '768Mi' },
  'usage-accountant': { min: 2, max: 6, cpu: '250m', memory: '256Mi' },
};

/** Where each replica with a durable journal keeps it (a PersistentVolume per replica). */
export const DURABLE_STATE: Partial<Record<ServiceName, { env: string; dir: string; file: string; size: string }>> = {
  'provider-executor': { env: 'USAGE_OUTBOX_PATH', dir: '/var/lib/llmgw', file: 'usage.journal', size: '2Gi' },
};

/** Same in every pod: each service is its own pod, so no offsets are needed. */
const METRICS_PORT = 9464;
/** The edge's OpenAI- and Anthropic-compatible HTTP surface. */
export const EDGE_HTTP_PORT = 8080;
/** The accountant's usage dashboard. */
export const DASHBOARD_PORT = 8081;

export interface RenderOptions {
  /** The image of each service, `{service}` standing for its name. */
  image: string;
  namespace: string;
}

const dependencyEnv = SERVICE_NAMES.map((n) => ({ name: ADDR_ENV[n], value: `${n}:${DEFAULT_PORTS[n]}` }));

function manifests(name: ServiceName, opts: RenderOptions): object[] {
  const port = DEFAULT_PORTS[name];
  const s = SCALING[name];
  const labels = { app: name, 'app.kubernetes.io/part-of': 'llm-gateway' };
  const probe = { grpc: { port: PROBE_PORT }, periodSeconds: 5 };
  const secrets = SECRETS[name];
  const state = DURABLE_STATE[name];
  const kind = state ? 'StatefulSet' : 'Deployment';
  return [
    {
      apiVersion: 'apps/v1',
      kind,
      metadata: { name, namespace: opts.namespace, labels },
      spec: {
        selector: { matchLabels: { app: name } },
        ...(state
          ? {
              serviceName: name,
              // Replicas are interchangeable; only their volumes are their own.
              podManagementPolicy: 'Parallel',
              volumeClaimTemplates: [
                {
                  metadata: { name: 'state' },
                  spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: state.size } } },
                },
              ],
            }
          : {}),
        template: {
          metadata: {
            labels,
            annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(METRICS_PORT), 'prometheus.io/path': '/metrics' },
          },
          spec: {
            terminationGracePeriodSeconds: 30,
            // No Kubernetes API token in pods that never call the API.
            automountServiceAccountToken: false,
            containers: [
              {
                name,
                image: opts.image.replaceAll('{service}', name),
                command: ['node', ...SERVICE_NODE_FLAGS, `dist/services/${name}/main.js`],
                env: [
                  { name: 'SERVICE', value: name },
                  { name: 'GRPC_LISTEN_ADDR', value: `0.0.0.0:${port}` },
                  { name: 'DRAIN_MS', value: '5000' },
                  { name: 'METRICS_PORT', value: String(METRICS_PORT) },
                  ...(USES_REDIS.has(name) ? [{ name: 'REDIS_URL', value: 'redis://redis:6379' }] : []),
                  { name: 'NATS_URL', value: 'nats://nats:4222' },
                  { name: 'GATEWAY_CONFIG', value: '/etc/llmgw/gateway.yaml' },
                  { name: 'MESH_TLS_DIR', value: TLS_DIR },
                  { name: 'GRPC_HEALTH_PROBE_ADDR', value: `0.0.0.0:${PROBE_PORT}` },
                  ...dependencyEnv,
                  ...(state ? [{ name: state.env, value: `${state.dir}/${state.file}` }] : []),
                  ...(name === 'edge' ? [{ name: 'EDGE_HTTP_ADDR', value: `0.0.0.0:${EDGE_HTTP_PORT}` }] : []),
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
                resources: { requests: { cpu: s.cpu, memory: s.memory }, limits: { memory: s.memory } },
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
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: opts.namespace, labels },
      spec: {
        selector: { app: name },
        ports: [
          { name: 'grpc', port, targetPort: port, appProtocol: 'grpc' },
          ...(name === 'edge' ? [{ name: 'http', port: EDGE_HTTP_PORT, targetPort: EDGE_HTTP_PORT, appProtocol: 'http' }] : []),
          ...(name === 'usage-accountant' ? [{ name: 'dashboard', port: DASHBOARD_PORT, targetPort: DASHBOARD_PORT, appProtocol: 'http' }] : []),
        ],
      },
    },
    certificate(name, opts),
    {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name, namespace: opts.namespace },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind, name },
        minReplicas: s.min,
        maxReplicas: s.max,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 65 } } }],
      },
    },
  ];
}

/** cert-manager's Certificate for one identity: ECDSA P-256, renewed well before it expires. */
function certificate(identity: string, opts: RenderOptions): object {
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

/** Every manifest of the mesh, and the operators' certificate (for grpcurl and admin tools). */
export function renderManifests(opts: RenderOptions): object[] {
  return [...SERVICE_NAMES.flatMap((n) => manifests(n, opts)), certificate(OPERATOR, opts)];
}

/** The manifests as one multi-document YAML stream. */
export function renderYaml(opts: RenderOptions): string {
  return renderManifests(opts)
    .map((m) => stringify(m, { aliasDuplicateObjects: false }))
    .join('---\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const image = 'llmgw-{service}:latest';
  const { values } = parseArgs({ options: { image: { type: 'string', default: image }, namespace: { type: 'string', default: 'llmgw' } } });
  process.stdout.write(renderYaml({ image: values.image ?? image, namespace: values.namespace ?? 'llmgw' }));
}
