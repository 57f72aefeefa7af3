import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { Secret } from 'kubernetes-models/v1/Secret';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO_ROOT } from '@llmgw/local-infra';
import { REDIS_USERS } from '@llmgw/redis';
import { SERVICE_NAMES } from '@llmgw/runtime';
import { credentialSecrets, NATS_AUTH_SECRET, newPasswords, redisUsersConf } from './credentials.js';
import { RENDER_DEFAULTS, renderManifests, STREAM_REPLICAS } from './render.js';

const passwords = newPasswords();
const secrets = credentialSecrets(passwords, 'gw');

/** Every (secret, key) a rendered pod reads through env valueFrom.secretKeyRef. */
function keyRefs(value: unknown, out: { name: string; key: string }[] = []): { name: string; key: string }[] {
  if (Array.isArray(value)) for (const v of value) keyRefs(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'secretKeyRef') out.push(v as { name: string; key: string });
      else keyRefs(v, out);
    }
  }
  return out;
}

describe('deploy/k8s/credentials.ts', () => {
  it('makes every secret key the rendered pods read, and valid Secrets', () => {
    const refs = keyRefs(renderManifests({ image: 'x', namespace: 'gw' }));
    expect(refs.length).toBeGreaterThan(SERVICE_NAMES.length);
    for (const ref of refs) {
      const s = secrets.find((x) => x.metadata?.name === ref.name);
      expect(s?.stringData?.[ref.key], `${ref.name}/${ref.key}`).toMatch(/^[0-9a-f]{48}$/);
    }
    for (const s of secrets) {
      expect(s.metadata?.namespace).toBe('gw');
      new Secret(s).validate();
    }
  });

  it('gives NATS every service user with its password and permissions, and Redis a user line each, passwords hashed', () => {
    const auth = secrets.find((s) => s.metadata?.name === NATS_AUTH_SECRET)!.stringData!['auth.conf']!;
    for (const service of SERVICE_NAMES) expect(auth).toContain(`{ user: "${service}", password: "${passwords.nats[service]}", permissions: `);
    const conf = redisUsersConf(passwords);
    expect(conf.split('\n').filter(Boolean).map((l) => l.split(' ')[1]).sort()).toEqual([...REDIS_USERS, 'admin'].sort());
    // The chart's default user stays as the chart sets it.
    expect(conf).not.toMatch(/^user default /m);
    for (const pw of Object.values(passwords.redis)) expect(conf).not.toContain(pw);
  });
});

describe('the NATS and Redis chart values (deploy/k8s/*-values.yaml)', () => {
  const values = (file: string) => parse(readFileSync(join(REPO_ROOT, 'deploy/k8s', file), 'utf8')) as Record<string, unknown>;

  it('mount the authorization block credentials.ts makes, on a 3-node JetStream cluster', () => {
    const nats = values('nats-values.yaml') as {
      config: { cluster: { enabled: boolean; replicas: number }; jetstream: { enabled: boolean }; merge: { $include: string } };
      container: { patch: { value: { name: string; mountPath: string } }[] };
      podTemplate: { patch: { value: { name: string; secret: { secretName: string } } }[] };
    };
    expect(nats.config.cluster).toMatchObject({ enabled: true, replicas: STREAM_REPLICAS });
    expect(nats.config.jetstream.enabled).toBe(true);
    const volume = nats.podTemplate.patch[0]!.value;
    expect(volume.secret.secretName).toBe(NATS_AUTH_SECRET);
    const mount = nats.container.patch.find((p) => p.value.name === volume.name)!.value;
    // Included relative to the chart's config directory, /etc/nats-config.
    expect(posix.join('/etc/nats-config', nats.config.merge.$include)).toBe(`${mount.mountPath}/auth.conf`);
  });

  it('name Redis where the manifests dial it and leave its network policy to the mesh', () => {
    const redis = values('redis-values.yaml') as { fullnameOverride: string; networkPolicy: { enabled: boolean } };
    expect(RENDER_DEFAULTS.redis).toBe(`redis://${redis.fullnameOverride}:6379`);
    expect(redis.networkPolicy.enabled).toBe(false);
  });
});
