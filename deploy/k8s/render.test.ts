import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { programArgs, REPO_ROOT } from '@llmgw/local-infra';
import { DEFAULT_PORTS, MESH_ACCESS, OPERATOR, SERVICE_NAMES, SERVICE_NODE_FLAGS, type ServiceName } from '@llmgw/runtime';
import {
  BOOTSTRAP_KEYS_SECRET,
  credentialsSecretOf,
  DURABLE_STATE,
  DASHBOARD_PORT,
  EDGE_HTTP_PORT,
  EDGE_MUX_STREAMS,
  MESH_ISSUER,
  PROVIDER_KEYS_SECRET,
  renderYaml,
  tlsSecretOf,
} from './render.js';

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: Record<string, unknown>;
}

const docs = parseAllDocuments(renderYaml({ image: 'registry.example/llmgw-{service}:test', namespace: 'gw' }));
const manifests = docs.map((d) => d.toJS() as Manifest);
/** The workload of each service: a Deployment, or a StatefulSet where it keeps a journal. */
const deployments = manifests.filter((m) => m.kind === 'Deployment' || m.kind === 'StatefulSet');
const podSpec = (d: Manifest) =>
  (d.spec as { template: { spec: { containers: { image: string; command: string[]; env: { name: string; value: string }[] }[] } } }).template.spec;

/** Every secret a manifest names, wherever it names it (envFrom, env valueFrom, volumes, projected). */
function secretsReferenced(value: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const v of value) secretsReferenced(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if ((k === 'secretRef' || k === 'secretKeyRef') && v && typeof v === 'object' && 'name' in v) out.add(String(v.name));
      if (k === 'secret' && v && typeof v === 'object' && 'secretName' in v) out.add(String(v.secretName));
      secretsReferenced(v, out);
    }
  }
  return out;
}

describe('k8s manifests (deploy/k8s/render.ts)', () => {
  it('render as valid YAML: a workload, Service, Certificate, HPA, PodDisruptionBudget and NetworkPolicy per service, consistent names and ports', () => {
    expect(docs.every((d) => d.errors.length === 0)).toBe(true);
    // And the operators' certificate, the default deny, and the policies of Redis and NATS.
    expect(manifests).toHaveLength(SERVICE_NAMES.length * 6 + 4);
    for (const m of manifests) {
      expect(m.apiVersion).toBeTruthy();
      expect(m.metadata.name).toMatch(/^[a-z0-9-]+$/);
    }
    for (const name of SERVICE_NAMES) {
      const d = deployments.find((m) => m.metadata.name === name)!;
      const c = podSpec(d).containers[0]!;
      expect(c.env.find((e) => e.name === 'GRPC_LISTEN_ADDR')?.value).toBe(`0.0.0.0:${DEFAULT_PORTS[name]}`);
      expect(manifests.find((m) => m.kind === 'Service' && m.metadata.name === name)).toBeTruthy();
      const hpa = manifests.find((m) => m.kind === 'HorizontalPodAutoscaler' && m.metadata.name === name)!;
      expect((hpa.spec as { scaleTargetRef: { name: string; kind: string } }).scaleTargetRef).toMatchObject({ name, kind: d.kind });
      expect(d.metadata.namespace).toBe('gw');
    }
  });

  it('runs each service from its own image as plain JavaScript: the bundle npm run build makes', () => {
    for (const name of SERVICE_NAMES) {
      const c = podSpec(deployments.find((m) => m.metadata.name === name)!).containers[0]!;
      expect(c.image).toBe(`registry.example/llmgw-${name}:test`);
      const [node, ...rest] = c.command;
      const bundle = rest.at(-1);
      expect(node).toBe('node');
      expect(rest.slice(0, -1)).toEqual(SERVICE_NODE_FLAGS);
      // The same file the local mesh runs from dist/ (npm test builds first).
      expect(join(REPO_ROOT, bundle!)).toBe(programArgs(`services/${name}/src/main.ts`, 'dist')[0]);
    }
  });

  it('gives the image the same Node.js flags as the manifests (the Dockerfile spells them out)', () => {
    const cmd = /^CMD \["sh", "-c", "exec node (.*) dist\/services\/\$\{SERVICE\}\/main\.js"\]$/m.exec(readFileSync(join(REPO_ROOT, 'deploy/docker/Dockerfile'), 'utf8'));
    expect(cmd?.[1]?.split(' ')).toEqual(SERVICE_NODE_FLAGS);
  });

  it('gives the provider-key secret only to provider-executor and the bootstrap-key secret only to auth', () => {
    const bySecret = (secret: string) => manifests.filter((m) => secretsReferenced(m).has(secret)).map((m) => `${m.kind}/${m.metadata.name}`);
    expect(bySecret(PROVIDER_KEYS_SECRET)).toEqual(['StatefulSet/provider-executor']);
    expect(bySecret(BOOTSTRAP_KEYS_SECRET)).toEqual(['Deployment/auth']);
    for (const m of manifests) {
      // Besides those two, a workload reads its own certificate and its own NATS/Redis passwords, nothing else.
      const others = [...secretsReferenced(m)].filter((s) => s !== PROVIDER_KEYS_SECRET && s !== BOOTSTRAP_KEYS_SECRET).sort();
      const own = m.kind === 'Deployment' || m.kind === 'StatefulSet' ? [credentialsSecretOf(m.metadata.name as ServiceName), tlsSecretOf(m.metadata.name)] : [];
      expect(others).toEqual(own);
    }
    // No other manifest even names it (e.g. in an annotation or a plain env value).
    const mentions = manifests.filter((m) => JSON.stringify(m).includes(PROVIDER_KEYS_SECRET)).map((m) => m.metadata.name);
    expect(mentions).toEqual(['provider-executor']);
  });

  it('serves the edge\'s HTTP surface on all interfaces, through its Service; no other service has one', () => {
    const edge = podSpec(deployments.find((d) => d.metadata.name === 'edge')!).containers[0]!;
    expect(edge.env.find((e) => e.name === 'EDGE_HTTP_ADDR')?.value).toBe(`0.0.0.0:${EDGE_HTTP_PORT}`);
    const service = manifests.find((m) => m.kind === 'Service' && m.metadata.name === 'edge')!;
    expect((service.spec as { ports: { name: string; port: number }[] }).ports.map((p) => [p.name, p.port])).toEqual([['grpc', DEFAULT_PORTS.edge], ['http', EDGE_HTTP_PORT]]);
    const others = deployments.filter((d) => d.metadata.name !== 'edge' && podSpec(d).containers[0]!.env.some((e) => e.name === 'EDGE_HTTP_ADDR'));
    expect(others).toEqual([]);
  });

  it('gives each edge more multiplexed streams per upstream than the default two, so its calls reach several replicas at once', () => {
    const edge = podSpec(deployments.find((d) => d.metadata.name === 'edge')!).containers[0]!;
    expect(Number(edge.env.find((e) => e.name === 'EDGE_MUX_STREAMS')?.value)).toBe(EDGE_MUX_STREAMS);
    expect(EDGE_MUX_STREAMS).toBeGreaterThan(2);
  });

  it('serves the accountant\'s usage dashboard on all interfaces, through its Service', () => {
    const accountant = podSpec(deployments.find((d) => d.metadata.name === 'usage-accountant')!).containers[0]!;
    expect(accountant.env.find((e) => e.name === 'ACCOUNTANT_HTTP_ADDR')?.value).toBe(`0.0.0.0:${DASHBOARD_PORT}`);
    const service = manifests.find((m) => m.kind === 'Service' && m.metadata.name === 'usage-accountant')!;
    expect((service.spec as { ports: { name: string; port: number }[] }).ports.map((p) => p.name)).toEqual(['grpc', 'dashboard']);
  });

  it('REDIS_URL only where the service uses Redis', () => {
    const withRedis = deployments.filter((d) => podSpec(d).containers[0]!.env.some((e) => e.name === 'REDIS_URL')).map((d) => d.metadata.name);
    expect(withRedis.sort()).toEqual(['auth', 'provider-executor', 'quota', 'usage-accountant']);
  });

  it('connects each service to NATS and Redis as its own user, the password from its own secret', () => {
    type Env = { name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } };
    const envOf = (yaml: string, name: string) => {
      const d = parseAllDocuments(yaml).map((doc) => doc.toJS() as Manifest).find((m) => m.kind === 'Deployment' && m.metadata.name === name)!;
      return podSpec(d).containers[0]!.env as Env[];
    };
    const env = envOf(renderYaml({ image: 'x', namespace: 'gw' }), 'quota');
    const byName = (n: string) => env.find((e) => e.name === n);
    expect(byName('NATS_USER')?.value).toBe('quota');
    expect(byName('NATS_PASSWORD')?.valueFrom?.secretKeyRef).toEqual({ name: credentialsSecretOf('quota'), key: 'nats-password' });
    expect(byName('REDIS_PASSWORD')?.valueFrom?.secretKeyRef).toEqual({ name: credentialsSecretOf('quota'), key: 'redis-password' });
    expect(byName('REDIS_URL')?.value).toBe('redis://quota:$(REDIS_PASSWORD)@redis:6379');
    // Kubernetes expands $(VAR) only from variables defined before it.
    expect(env.findIndex((e) => e.name === 'REDIS_PASSWORD')).toBeLessThan(env.findIndex((e) => e.name === 'REDIS_URL'));
    // Every stream on all three nodes of the JetStream cluster.
    expect(byName('NATS_STREAM_REPLICAS')?.value).toBe('3');
    const cluster = envOf(renderYaml({ image: 'x', namespace: 'gw', redis: 'redis-cluster://redis:6379' }), 'usage-accountant');
    expect(cluster.find((e) => e.name === 'REDIS_URL')?.value).toBe('redis-cluster://usage-accountant:$(REDIS_PASSWORD)@redis:6379');
    expect(() => renderYaml({ image: 'x', namespace: 'gw', redis: 'redis:6379' })).toThrow(/scheme/);
  });

  it('keeps the executor journal on a volume of its own per replica, at the path the executor is told', () => {
    const executor = deployments.find((d) => d.metadata.name === 'provider-executor')!;
    expect(executor.kind).toBe('StatefulSet');
    const spec = executor.spec as {
      volumeClaimTemplates: { metadata: { name: string }; spec: { accessModes: string[] } }[];
      template: { spec: { containers: { env: { name: string; value: string }[]; volumeMounts: { name: string; mountPath: string }[] }[] } };
    };
    const claim = spec.volumeClaimTemplates[0]!;
    expect(claim.spec.accessModes).toEqual(['ReadWriteOnce']);
    const c = spec.template.spec.containers[0]!;
    const mount = c.volumeMounts.find((v) => v.name === claim.metadata.name)!;
    const path = c.env.find((e) => e.name === DURABLE_STATE['provider-executor']!.env)!.value;
    expect(path.startsWith(`${mount.mountPath}/`)).toBe(true);
    // Nothing else keeps state in its pod.
    expect(deployments.filter((d) => d.kind === 'StatefulSet').map((d) => d.metadata.name)).toEqual(['provider-executor']);
  });

  it('gives every service and the operators a cert-manager certificate naming their mesh identity, mounted where MESH_TLS_DIR points', () => {
    const certs = manifests.filter((m) => m.kind === 'Certificate');
    expect(certs.map((c) => c.metadata.name).sort()).toEqual([...SERVICE_NAMES, OPERATOR].map(tlsSecretOf).sort());
    for (const c of certs) {
      const spec = c.spec as { secretName: string; uris: string[]; dnsNames: string[]; usages: string[]; issuerRef: { name: string } };
      const identity = c.metadata.name.replace('llmgw-tls-', '');
      expect(spec.secretName).toBe(c.metadata.name);
      expect(spec.uris).toEqual([`spiffe://llmgateway/${identity}`]);
      expect(spec.dnsNames).toContain(identity);
      expect(spec.usages).toEqual(expect.arrayContaining(['server auth', 'client auth']));
      expect(spec.issuerRef.name).toBe(MESH_ISSUER);
    }
    for (const d of deployments) {
      const pod = podSpec(d) as unknown as { containers: { env: { name: string; value: string }[]; volumeMounts: { name: string; mountPath: string }[]; readinessProbe: { grpc: { port: number } }; ports: { name: string; containerPort: number }[] }[]; volumes: { name: string; secret?: { secretName: string } }[] };
      const c = pod.containers[0]!;
      const dir = c.env.find((e) => e.name === 'MESH_TLS_DIR')?.value;
      const mount = c.volumeMounts.find((v) => v.mountPath === dir);
      expect(pod.volumes.find((v) => v.name === mount?.name)?.secret?.secretName).toBe(tlsSecretOf(d.metadata.name));
      // Kubelet probes the plaintext health-only port, which the process is told to serve.
      const probePort = c.ports.find((p) => p.name === 'probe')!.containerPort;
      expect(c.readinessProbe.grpc.port).toBe(probePort);
      expect(c.env.find((e) => e.name === 'GRPC_HEALTH_PROBE_ADDR')?.value).toBe(`0.0.0.0:${probePort}`);
    }
  });
});

/*
 * NetworkPolicy semantics, enough to ask the rendered policies who may reach whom: a pod is
 * isolated for a direction once a policy of that type selects it, and then allowed only what
 * some such policy's rule allows (peers by pod labels in the policy's namespace, by namespace,
 * or by address; ports by number).
 */
interface Pod {
  labels: Record<string, string>;
  namespace: string;
  /** Outside the cluster: reached through ipBlock peers only. */
  external?: boolean;
}
interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values: string[] }[];
}
interface Peer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: { cidr: string };
}
interface Rule {
  from?: Peer[];
  to?: Peer[];
  ports?: { protocol: string; port: number }[];
}
interface PolicySpec {
  podSelector: Selector;
  policyTypes: ('Ingress' | 'Egress')[];
  ingress?: Rule[];
  egress?: Rule[];
}

function matches(sel: Selector, labels: Record<string, string>): boolean {
  const byLabel = Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return (
    byLabel &&
    (sel.matchExpressions ?? []).every((e) => {
      if (e.operator !== 'In') throw new Error(`selector operator ${e.operator} is not modelled here`);
      return e.values.includes(labels[e.key] ?? '');
    })
  );
}

function peerMatches(peer: Peer, pod: Pod, policyNamespace: string): boolean {
  if (peer.ipBlock) return pod.external === true;
  if (pod.external) return false;
  const inNamespace = peer.namespaceSelector ? matches(peer.namespaceSelector, { 'kubernetes.io/metadata.name': pod.namespace }) : pod.namespace === policyNamespace;
  return inNamespace && (!peer.podSelector || matches(peer.podSelector, pod.labels));
}

const policies = manifests.filter((m) => m.kind === 'NetworkPolicy') as unknown as (Manifest & { spec: PolicySpec })[];

/** May `from` open a TCP connection to `to` on `port`? Egress of `from` and ingress of `to` must both allow it. */
function reaches(from: Pod, to: Pod, port: number, all = policies): boolean {
  const allowed = (direction: 'Ingress' | 'Egress', self: Pod, other: Pod) => {
    if (self.external) return true;
    const selecting = all.filter((p) => p.metadata.namespace === self.namespace && p.spec.policyTypes.includes(direction) && matches(p.spec.podSelector, self.labels));
    if (selecting.length === 0) return true;
    return selecting.some((p) =>
      (direction === 'Ingress' ? p.spec.ingress : p.spec.egress)?.some((rule) => {
        const peers = direction === 'Ingress' ? rule.from : rule.to;
        const portOk = !rule.ports || rule.ports.some((q) => q.protocol === 'TCP' && q.port === port);
        return portOk && (!peers || peers.some((peer) => peerMatches(peer, other, p.metadata.namespace!)));
      }),
    );
  };
  return allowed('Egress', from, to) && allowed('Ingress', to, from);
}

const podOf = (name: string): Pod => {
  const d = deployments.find((m) => m.metadata.name === name)!;
  return { labels: (d.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels, namespace: 'gw' };
};
const operatorPod: Pod = { labels: { 'llmgw.io/identity': OPERATOR }, namespace: 'gw' };
const strangerPod: Pod = { labels: { app: 'something-else' }, namespace: 'gw' };
const internet: Pod = { labels: {}, namespace: '', external: true };
const redisPod: Pod = { labels: { 'app.kubernetes.io/name': 'redis-cluster', 'app.kubernetes.io/instance': 'redis' }, namespace: 'gw' };
const natsPod: Pod = { labels: { 'app.kubernetes.io/name': 'nats', 'app.kubernetes.io/component': 'nats' }, namespace: 'gw' };
const prometheus: Pod = { labels: { app: 'prometheus' }, namespace: 'monitoring' };
const METRICS = 9464;
const PROBE = 50099;

describe('k8s manifests at scale', () => {
  it('requests and limits CPU and memory for every container: memory limit = request, CPU limit at least a core and the request', () => {
    const cores = (q: string) => (q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q));
    for (const d of deployments) {
      const c = podSpec(d).containers[0] as unknown as { resources: { requests: Record<string, string>; limits: Record<string, string> } };
      expect(Object.keys(c.resources.requests).sort()).toEqual(['cpu', 'memory']);
      expect(Object.keys(c.resources.limits).sort()).toEqual(['cpu', 'memory']);
      expect(c.resources.limits.memory).toBe(c.resources.requests.memory);
      expect(cores(c.resources.limits.cpu!)).toBeGreaterThanOrEqual(Math.max(1, cores(c.resources.requests.cpu!)));
    }
  });

  it('gives every service an HPA and a PodDisruptionBudget of one pod at a time over exactly its pods', () => {
    for (const name of SERVICE_NAMES) {
      expect(manifests.find((m) => m.kind === 'HorizontalPodAutoscaler' && m.metadata.name === name)).toBeTruthy();
      const pdb = manifests.find((m) => m.kind === 'PodDisruptionBudget' && m.metadata.name === name)!;
      const spec = pdb.spec as { maxUnavailable: number; minAvailable?: number; selector: Selector };
      expect(spec.maxUnavailable).toBe(1);
      expect(spec.minAvailable).toBeUndefined();
      expect(SERVICE_NAMES.filter((other) => matches(spec.selector, podOf(other).labels))).toEqual([name]);
    }
  });

  it('makes internal Services headless (every pod in DNS, for the callers\' round robin); the edge keeps a cluster IP', () => {
    for (const name of SERVICE_NAMES) {
      const svc = manifests.find((m) => m.kind === 'Service' && m.metadata.name === name)!;
      expect((svc.spec as { clusterIP?: string }).clusterIP).toBe(name === 'edge' ? undefined : 'None');
    }
    const executor = deployments.find((d) => d.kind === 'StatefulSet')!;
    const governing = manifests.find((m) => m.kind === 'Service' && m.metadata.name === (executor.spec as { serviceName: string }).serviceName)!;
    expect((governing.spec as { clusterIP?: string }).clusterIP).toBe('None');
  });

  it('has servers age connections out, so clients resolve again and find new replicas', () => {
    for (const d of deployments) {
      const age = podSpec(d).containers[0]!.env.find((e) => e.name === 'GRPC_MAX_CONNECTION_AGE_MS')?.value;
      expect(Number(age)).toBeGreaterThanOrEqual(10_000);
      expect(Number(age)).toBeLessThanOrEqual(300_000);
    }
  });

  it.each(SERVICE_NAMES.filter((s) => s !== 'edge'))('lets reach %s\'s gRPC port only the identities its access table lets call a method (operators for reflection)', (callee) => {
    const port = DEFAULT_PORTS[callee];
    for (const caller of [...SERVICE_NAMES, OPERATOR] as const) {
      const mayCall = caller === OPERATOR || Object.values(MESH_ACCESS[callee]).some((a) => a !== 'public' && a.includes(caller));
      expect(reaches(caller === OPERATOR ? operatorPod : podOf(caller), podOf(callee), port), `${caller} → ${callee}`).toBe(mayCall);
    }
    expect(reaches(strangerPod, podOf(callee), port)).toBe(false);
    // The same labels in another namespace are not the mesh.
    expect(reaches({ ...podOf('edge'), namespace: 'elsewhere' }, podOf(callee), port)).toBe(false);
  });

  it('opens the edge\'s public ports to anyone, or only to the namespace named; metrics to Prometheus only; probes to anyone', () => {
    for (const port of [DEFAULT_PORTS.edge, EDGE_HTTP_PORT]) {
      expect(reaches(internet, podOf('edge'), port)).toBe(true);
      expect(reaches(strangerPod, podOf('edge'), port)).toBe(true);
    }
    const fenced = parseAllDocuments(renderYaml({ image: 'x', namespace: 'gw', publicNamespace: 'ingress-nginx' })).map((d) => d.toJS() as Manifest & { spec: PolicySpec });
    const onlyPolicies = fenced.filter((m) => m.kind === 'NetworkPolicy');
    expect(reaches({ labels: {}, namespace: 'ingress-nginx' }, podOf('edge'), EDGE_HTTP_PORT, onlyPolicies)).toBe(true);
    expect(reaches(strangerPod, podOf('edge'), EDGE_HTTP_PORT, onlyPolicies)).toBe(false);
    expect(reaches(strangerPod, podOf('usage-accountant'), DASHBOARD_PORT, onlyPolicies)).toBe(false);
    for (const name of SERVICE_NAMES) {
      expect(reaches(prometheus, podOf(name), METRICS)).toBe(true);
      expect(reaches(strangerPod, podOf(name), METRICS)).toBe(false);
      expect(reaches(internet, podOf(name), PROBE)).toBe(true);
      // Prometheus scrapes; it does not call.
      if (name !== 'edge') expect(reaches(prometheus, podOf(name), DEFAULT_PORTS[name])).toBe(false);
    }
  });

  it('lets Redis and NATS be reached by the services that use them (and operators), no one else', () => {
    for (const name of SERVICE_NAMES) {
      // Exactly the services told where Redis is.
      const toldRedis = podSpec(deployments.find((d) => d.metadata.name === name)!).containers[0]!.env.some((e) => e.name === 'REDIS_URL');
      expect(reaches(podOf(name), redisPod, 6379), `${name} → redis`).toBe(toldRedis);
      // Every service has a bus role (libs/events permissions.ts).
      expect(reaches(podOf(name), natsPod, 4222), `${name} → nats`).toBe(true);
    }
    expect(reaches(operatorPod, redisPod, 6379)).toBe(true);
    expect(reaches(strangerPod, redisPod, 6379)).toBe(false);
    expect(reaches(strangerPod, natsPod, 4222)).toBe(false);
    // Their own cluster traffic: Redis's bus, NATS's routes.
    expect(reaches(redisPod, redisPod, 16379)).toBe(true);
    expect(reaches(natsPod, natsPod, 6222)).toBe(true);
  });

  it('lets out of the cluster only the executor (providers) and the accountant (alert webhooks), on 443', () => {
    for (const name of SERVICE_NAMES) {
      expect(reaches(podOf(name), internet, 443), name).toBe(name === 'provider-executor' || name === 'usage-accountant');
      expect(reaches(podOf(name), internet, 80), name).toBe(false);
    }
  });

  it('denies by default: a pod of the mesh without a policy of its own reaches nothing and is reached by nothing', () => {
    const unknown: Pod = { labels: { 'app.kubernetes.io/part-of': 'llm-gateway', app: 'new-service' }, namespace: 'gw' };
    expect(reaches(podOf('edge'), unknown, 50060)).toBe(false);
    expect(reaches(unknown, podOf('auth'), DEFAULT_PORTS.auth)).toBe(false);
    expect(reaches(unknown, internet, 443)).toBe(false);
  });
});
