import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { programArgs, REPO_ROOT } from '@llmgw/local-infra';
import { DEFAULT_PORTS, OPERATOR, SERVICE_NAMES, SERVICE_NODE_FLAGS } from '@llmgw/runtime';
import { BOOTSTRAP_KEYS_SECRET, DURABLE_STATE, DASHBOARD_PORT, EDGE_HTTP_PORT, MESH_ISSUER, PROVIDER_KEYS_SECRET, renderYaml, tlsSecretOf } from './render.js';

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
  it('render as valid YAML: a workload, Service, Certificate and HPA per service, consistent names and ports', () => {
    expect(docs.every((d) => d.errors.length === 0)).toBe(true);
    expect(manifests).toHaveLength(SERVICE_NAMES.length * 4 + 1);
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
      // Besides those two, a workload mounts its own certificate and nothing else.
      const others = [...secretsReferenced(m)].filter((s) => s !== PROVIDER_KEYS_SECRET && s !== BOOTSTRAP_KEYS_SECRET);
      expect(others).toEqual(m.kind === 'Deployment' || m.kind === 'StatefulSet' ? [tlsSecretOf(m.metadata.name)] : []);
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
