import { Secret } from 'kubernetes-models/v1/Secret';
import { describe, expect, it } from 'vitest';
import { REDIS_USERS } from '@llmgw/redis';
import { SERVICE_NAMES } from '@llmgw/runtime';
import { credentialSecrets, NATS_AUTH_SECRET, newPasswords, redisUsersConf } from './credentials.js';
import { renderManifests } from './render.js';

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
