import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { renderYaml } from './render.js';

/*
 * Offline validation: every rendered object against the OpenAPI schema of its kind, as the API
 * server would check it (types, required fields, enums, formats). The schemas are those that
 * kubernetes-models and @kubernetes-models/cert-manager ship, compiled for ajv: nothing is fetched
 * and no cluster is needed. Unknown fields are not schema errors (Kubernetes drops them); render.ts
 * is typed with the same packages' interfaces, so tsc refuses those.
 */

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string };
}
interface Validatable {
  validate(): void;
}
type ModelClass = new (data: KubeObject) => Validatable;

/** Packages with the models of API groups that are not Kubernetes' own. */
const GROUP_PACKAGES: Record<string, string> = { 'cert-manager.io': '@kubernetes-models/cert-manager' };

/** The model class of an apiVersion and kind, e.g. kubernetes-models/apps/v1/Deployment. */
async function modelOf(apiVersion: string, kind: string): Promise<ModelClass> {
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  const pkg = GROUP_PACKAGES[group] ?? 'kubernetes-models';
  const mod = (await import(`${pkg}/${apiVersion}/${kind}`)) as Record<string, ModelClass>;
  const model = mod[kind];
  if (!model) throw new Error(`no model for ${apiVersion} ${kind} in ${pkg}`);
  return model;
}

/** The schema violations of one object, as `path message` lines (empty when valid). */
async function violations(obj: KubeObject): Promise<string[]> {
  const Model = await modelOf(obj.apiVersion, obj.kind);
  try {
    new Model(obj).validate();
    return [];
  } catch (err) {
    const details = (err as { details?: { instancePath: string; message?: string }[] }).details;
    return details?.map((d) => `${d.instancePath} ${d.message ?? ''}`) ?? [String(err)];
  }
}

const rendered = (publicNamespace?: string) =>
  parseAllDocuments(renderYaml({ image: 'registry.example/llmgw-{service}:1.0.0', namespace: 'llmgw', publicNamespace })).map((d) => d.toJS() as KubeObject);

describe('k8s manifests against the Kubernetes and cert-manager schemas (offline)', () => {
  it.each([
    ['default options', undefined],
    ['public ports fenced to a namespace', 'ingress-nginx'],
  ])('every object is valid for its kind (%s)', async (_, publicNamespace) => {
    const objects = rendered(publicNamespace);
    expect(new Set(objects.map((o) => o.kind))).toEqual(
      new Set(['Deployment', 'StatefulSet', 'Service', 'Certificate', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'NetworkPolicy']),
    );
    for (const obj of objects) expect(await violations(obj), `${obj.kind}/${obj.metadata?.name}`).toEqual([]);
  });

  it('catches what the API server would refuse', async () => {
    const [deployment] = rendered().filter((o) => o.kind === 'Deployment') as (KubeObject & { spec: { template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } } } })[];
    deployment!.spec.template.spec.containers[0]!.ports[0]!.containerPort = 'grpc';
    expect(await violations(deployment!)).toEqual([expect.stringContaining('/spec/template/spec/containers/0/ports/0/containerPort')]);
    const pdb = rendered().find((o) => o.kind === 'PodDisruptionBudget') as KubeObject & { spec: Record<string, unknown> };
    pdb.spec.unhealthyPodEvictionPolicy = 'Sometimes';
    expect(await violations(pdb)).not.toEqual([]);
    await expect(modelOf('example.com/v1', 'Widget')).rejects.toThrow();
  });
});
