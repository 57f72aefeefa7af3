/**
 * Renders the Kubernetes manifests of the mesh from one template, so that the six services
 * cannot drift apart:  npx tsx deploy/k8s/render.ts --image registry/llmgw:TAG | kubectl apply -f -
 * Each service gets a Deployment (gRPC liveness/readiness probes on grpc.health.v1, SIGTERM drain),
 * a Service and an HPA. Redis and NATS JetStream are expected at redis:6379 and nats:4222
 * (Redis Sentinel/Cluster and a 3-node JetStream cluster in production).
 * Every pod serves Prometheus metrics on port `metrics` (METRICS_PORT) with prometheus.io/* scrape annotations.
 */
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { ADDR_ENV, DEFAULT_PORTS, SERVICE_NAMES, type ServiceName } from '@llmgw/runtime';

const { values } = parseArgs({ options: { image: { type: 'string', default: 'llmgw:latest' }, namespace: { type: 'string', default: 'llmgw' } } });

const SCALING: Record<ServiceName, { min: number; max: number; cpu: string; memory: string }> = {
  edge: { min: 3, max: 30, cpu: '1', memory: '512Mi' },
  auth: { min: 2, max: 10, cpu: '250m', memory: '256Mi' },
  quota: { min: 2, max: 20, cpu: '500m', memory: '256Mi' },
  router: { min: 2, max: 10, cpu: '250m', memory: '256Mi' },
  'provider-executor': { min: 3, max: 40, cpu: '1', memory: '768Mi' },
  'usage-accountant': { min: 2, max: 6, cpu: '250m', memory: '256Mi' },
};

/** Same in every pod: each service is its own pod, so no offsets are needed. */
const METRICS_PORT = 9464;

const dependencyEnv = SERVICE_NAMES.map((n) => ({ name: ADDR_ENV[n], value: `${n}:${DEFAULT_PORTS[n]}` }));

function manifests(name: ServiceName): object[] {
  const port = DEFAULT_PORTS[name];
  const s = SCALING[name];
  const labels = { app: name, 'app.kubernetes.io/part-of': 'llm-gateway' };
  const probe = { grpc: { port }, periodSeconds: 5 };
  return [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: values.namespace, labels },
      spec: {
        selector: { matchLabels: { app: name } },
        template: {
          metadata: {
            labels,
            annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(METRICS_PORT), 'prometheus.io/path': '/metrics' },
          },
          spec: {
            terminationGracePeriodSeconds: 30,
            containers: [
              {
                name,
                image: values.image,
                env: [
                  { name: 'SERVICE', value: name },
                  { name: 'GRPC_LISTEN_ADDR', value: `0.0.0.0:${port}` },
                  { name: 'DRAIN_MS', value: '5000' },
                  { name: 'METRICS_PORT', value: String(METRICS_PORT) },
                  { name: 'REDIS_URL', value: 'redis://redis:6379' },
                  { name: 'NATS_URL', value: 'nats://nats:4222' },
                  { name: 'GATEWAY_CONFIG', value: '/etc/llmgw/gateway.yaml' },
                  ...dependencyEnv,
                ],
                envFrom: [{ secretRef: { name: 'llmgw-provider-keys', optional: true } }],
                ports: [
                  { name: 'grpc', containerPort: port },
                  { name: 'metrics', containerPort: METRICS_PORT },
                ],
                readinessProbe: probe,
                livenessProbe: { ...probe, failureThreshold: 6 },
                resources: { requests: { cpu: s.cpu, memory: s.memory }, limits: { memory: s.memory } },
                volumeMounts: [{ name: 'config', mountPath: '/etc/llmgw' }],
              },
            ],
            volumes: [{ name: 'config', configMap: { name: 'llmgw-config' } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: values.namespace, labels },
      spec: { selector: { app: name }, ports: [{ name: 'grpc', port, targetPort: port, appProtocol: 'grpc' }] },
    },
    {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name, namespace: values.namespace },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
        minReplicas: s.min,
        maxReplicas: s.max,
        metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 65 } } }],
      },
    },
  ];
}

process.stdout.write(SERVICE_NAMES.flatMap(manifests).map((m) => stringify(m, { aliasDuplicateObjects: false })).join('---\n'));
